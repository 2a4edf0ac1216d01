"""Nearest-neighbour graphs, and placing points by their neighbours: what UMAP fits on, what the
evaluation space's graph is, and how points a reducer did not fit get their coordinates."""

from __future__ import annotations

import numpy as np

# Below this many points the graph is exact (brute force: 10,000 × 256 took 1 s, cosine 4 s;
# NN-descent took 50 s with its numba compilation). UMAP fits at most 10,000 points, so every UMAP fit
# — a trial's and a served refit's (``GraphUMAP``) — starts from the same exact graph.
EXACT_KNN_BOUND = 10_000


def nearest_neighbours(X: np.ndarray, k: int, metric: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each point's ``k`` nearest neighbours, itself first: exact up to ``EXACT_KNN_BOUND`` points
    (what UMAP computes itself below 4,096), NN-descent with UMAP's settings above."""
    if len(X) <= EXACT_KNN_BOUND:
        from sklearn.neighbors import NearestNeighbors

        X = np.asarray(X, dtype=np.float64)
        dist, idx = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(X).kneighbors(X)
        # Rounding leaves a point ~1e-8 from itself; UMAP's local scale (the first non-zero
        # distance) would take that for its nearest neighbour.
        dist[idx == np.arange(len(X))[:, None]] = 0.0
        return idx.astype(np.int32), dist.astype(np.float32)
    from umap.umap_ import nearest_neighbors

    idx, dist, _ = nearest_neighbors(X, k, metric, {}, False, np.random.RandomState(seed), low_memory=True,
                                     use_pynndescent=True, n_jobs=1, verbose=False)
    return idx.astype(np.int32), dist.astype(np.float32)


def nearest_fitted(search, fitted: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``points``' nearest rows of ``fitted`` through ``search`` (a ``NearestNeighbors`` fitted on it),
    nearest first. A point equal to a fitted row gets distance 0 — brute force leaves it ~1e-4 away in
    float32 — so ``place_by_neighbours`` puts it exactly where that row is."""
    points = np.asarray(points, dtype=np.float32)
    dist, idx = search.kneighbors(points)
    dist[(points == fitted[idx[:, 0]]).all(axis=1), 0] = 0.0
    return idx.astype(np.int32), dist.astype(np.float32)


def place_by_neighbours(embedded: np.ndarray, idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """UMAP's ``transform`` start for points it did not fit: each point at the mean of its nearest
    fitted points' coordinates (``idx``/``dist``, nearest first), weighted by UMAP's membership
    strengths (its refining epochs are left out). A point equal to a fitted one takes its place: a
    served model asked about a training image answers what the study found for it."""
    from scipy.sparse import csr_matrix
    from umap.umap_ import smooth_knn_dist

    k = idx.shape[1]
    sigmas, rhos = smooth_knn_dist(dist, float(k), local_connectivity=0.0)  # as UMAP.transform
    weights = np.exp(-np.maximum(dist - rhos[:, None], 0.0) / sigmas[:, None])
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = csr_matrix((weights.ravel(), idx.ravel(), np.arange(0, idx.size + 1, k)),
                        shape=(len(idx), len(embedded)))
    placed = np.asarray(matrix @ embedded, dtype=np.float32)
    same = dist[:, 0] == 0
    placed[same] = embedded[idx[same, 0]]
    return placed
