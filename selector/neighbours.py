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


# UMAP's transform refines new points for a third of the fit's epochs (200 // 3), with its own seed.
PLACE_EPOCHS = 66
PLACE_SEED = 42


def place_by_neighbours(embedded: np.ndarray, idx: np.ndarray, dist: np.ndarray, min_dist: float = 0.1,
                        epochs: int = PLACE_EPOCHS) -> np.ndarray:
    """UMAP's ``transform`` for points it did not fit, from their nearest fitted points (``idx`` and
    ``dist``, nearest first): start at the neighbours' mean weighted by UMAP's membership strengths,
    then ``epochs`` of UMAP's layout optimisation that move only the new points. A point equal to a
    fitted one takes that one's place: a served model asked about a training image answers what the
    study found for it. Deterministic (a fixed seed, single-threaded)."""
    from scipy.sparse import coo_matrix
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import compute_membership_strengths, find_ab_params, make_epochs_per_sample, smooth_knn_dist

    embedded = np.ascontiguousarray(embedded, dtype=np.float32)
    idx, dist = np.ascontiguousarray(idx), np.ascontiguousarray(dist, dtype=np.float32)  # numba wants C order
    k = idx.shape[1]
    sigmas, rhos = smooth_knn_dist(dist, float(k), local_connectivity=0.0)  # as UMAP.transform
    rows, cols, vals, _ = compute_membership_strengths(idx, dist, sigmas, rhos, bipartite=True)
    graph = coo_matrix((vals, (rows, cols)), shape=(len(idx), len(embedded))).tocsr()
    graph.eliminate_zeros()
    weights = graph.multiply(1.0 / np.maximum(np.asarray(graph.sum(axis=1)), 1e-12)).tocsr()
    placed = np.asarray(weights @ embedded, dtype=np.float32)
    if epochs > 0 and graph.nnz:
        graph = graph.tocoo()
        graph.data[graph.data < graph.data.max() / float(epochs)] = 0.0
        graph.eliminate_zeros()
        a, b = find_ab_params(1.0, float(min_dist))
        rng_state = np.random.RandomState(PLACE_SEED).randint(np.iinfo(np.int32).min, np.iinfo(np.int32).max,
                                                              3).astype(np.int64)
        placed = optimize_layout_euclidean(placed, embedded.copy(), graph.row, graph.col, epochs, len(embedded),
                                           make_epochs_per_sample(graph.data, epochs), a, b, rng_state, 1.0, 0.25,
                                           5, False)
    same = dist[:, 0] == 0
    placed[same] = embedded[idx[same, 0]]
    return np.asarray(placed, dtype=np.float32)
