"""Whether a partition's clusters are apart where they meet: for each cluster and the cluster it shares
most fuzzy-graph weight with, the two clusters' points in the embedding (its principal components, as
the embedding silhouette reads them), projected on the line through the two centres, must show a dip —
Hartigan's dip test rejects a single mode. A cut through one continuous class (two halves of one
person's photos, a field split in seven) leaves no dip; two classes that touch still leave one.

The study uses it to settle close calls (``selector.study.alternatives.settle``): when none of the best
trial's clusters is apart from its nearest, the best-scoring alternative within ``CLOSE`` of it whose
every cluster is apart; the best trial otherwise, or when none is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ALPHA = 0.01  # the dip test's level: a pair is apart when a single mode is rejected at this level
MAX_POINTS = 1000  # a pair's projection is subsampled (seeded) to this many points before the test


@dataclass(frozen=True)
class Separation:
    """A partition's nearest-cluster pairs and how many of them show a dip (``apart``)."""

    pairs: int
    apart: int

    @property
    def separated(self) -> bool:
        """Every cluster is apart from the cluster it touches most."""
        return self.apart == self.pairs


def nearest_pairs(graph, labels: np.ndarray) -> list[tuple[int, int]]:
    """Each cluster with the cluster it shares the most graph weight with (``labels`` of the graph's
    points; -1 is noise and joins no pair), as unordered pairs of cluster labels, each pair once."""
    labels = np.asarray(labels)
    clusters = np.unique(labels[labels != -1])
    if len(clusters) < 2:
        return []
    kept = np.flatnonzero(labels != -1)
    member = sp.csr_matrix((np.ones(len(kept)), (kept, np.searchsorted(clusters, labels[kept]))),
                           shape=(len(labels), len(clusters)))
    between = (member.T @ sp.csr_matrix(graph) @ member).toarray()
    np.fill_diagonal(between, -np.inf)
    pairs = {tuple(sorted((int(clusters[i]), int(clusters[j])))) for i, j in enumerate(between.argmax(axis=1))}
    return sorted(pairs)


def dip_apart(points: np.ndarray, first: np.ndarray, second: np.ndarray, seed: int, alpha: float = ALPHA) -> bool:
    """Whether the points of two groups (boolean masks over ``points``), projected on the line through
    the groups' centres, are bimodal by Hartigan's dip test at level ``alpha``."""
    import diptest

    direction = points[first].mean(axis=0) - points[second].mean(axis=0)
    projected = points[first | second] @ direction
    if len(projected) > MAX_POINTS:
        projected = np.random.default_rng(seed).choice(projected, MAX_POINTS, replace=False)
    if len(projected) < 4 or np.ptp(projected) == 0:
        return False  # too few distinct points for the test to reject anything
    return bool(diptest.diptest(projected)[1] < alpha)


def separation(space, labels: np.ndarray, seed: int, alpha: float = ALPHA) -> Separation:
    """``labels``' nearest-cluster pairs in ``space`` (an ``EvalSpace``: its fuzzy graph finds the
    pairs, its embedding coordinates test them) and how many of them are apart."""
    labels = np.asarray(labels)
    pairs = nearest_pairs(space.graph, space.on_graph(labels))
    points = space.embedding_coords(seed)
    apart = sum(dip_apart(points, labels == a, labels == b, seed + i, alpha) for i, (a, b) in enumerate(pairs))
    return Separation(pairs=len(pairs), apart=int(apart))
