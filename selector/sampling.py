"""Seeded samples: what a costly stage fits on when the data outgrows it, and what a score is
estimated on. One place, so every stage that samples with the same seed picks the same points."""

from __future__ import annotations

import numpy as np


def seeded_sample(n: int, size: int, seed: int) -> np.ndarray | None:
    """Sorted indices of ``size`` of ``n`` points drawn with ``seed``; ``None`` when all fit."""
    if n <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def outside(n: int, sample: np.ndarray) -> np.ndarray:
    """A mask of the ``n`` points that are not in ``sample``."""
    mask = np.ones(n, dtype=bool)
    mask[sample] = False
    return mask


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of about ``size`` points, each cluster in proportion and with at least two points
    (one when it has only one), so a sample never drops a cluster."""
    rng = np.random.default_rng(seed)
    clusters, counts = np.unique(labels, return_counts=True)
    picks = []
    for cluster, count in zip(clusters, counts):
        members = np.flatnonzero(labels == cluster)
        take = min(count, max(2, int(round(size * count / len(labels)))))
        picks.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(picks))
