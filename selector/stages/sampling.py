"""Seeded samples: what a costly stage fits on when the data outgrows it, and what a score is
estimated on. One place, so every stage that samples with the same seed picks the same points."""

from __future__ import annotations

from typing import Callable

import numpy as np


def seeded_sample(n: int, size: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of ``size`` of ``n`` points drawn with ``seed``; ``None`` when all fit
    (or there is no bound)."""
    if size is None or n <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def outside(n: int, sample: np.ndarray) -> np.ndarray:
    """A mask of the ``n`` points that are not in ``sample``."""
    mask = np.ones(n, dtype=bool)
    mask[sample] = False
    return mask


def merge(sample: np.ndarray, on_sample: np.ndarray, on_rest: np.ndarray) -> np.ndarray:
    """One row per point: ``on_sample`` at the sample's indices, ``on_rest`` (in order) at the others."""
    n = len(on_sample) + len(on_rest)
    merged = np.empty((n, *on_sample.shape[1:]), dtype=np.result_type(on_sample, on_rest))
    merged[sample], merged[outside(n, sample)] = on_sample, on_rest
    return merged


def fit_and_place(X: np.ndarray, sample: np.ndarray | None, fit: Callable[[np.ndarray], np.ndarray],
                  place: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A costly stage that fits a seeded sample and places the other points: ``fit`` on the sample's
    rows (on every row when ``sample`` is ``None``), then ``place`` on the rest; one result row per
    row of ``X``, in order. Reducers, UMAP's shared-graph trials and clusterers all go through here."""
    if sample is None:
        return fit(X)
    on_sample = fit(X[sample])
    return merge(sample, on_sample, place(X[outside(len(X), sample)]))


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
