"""Nearest-neighbour graphs, and placing points by their neighbours: what UMAP fits on, what the
evaluation space's graph is, and how points a reducer did not fit get their coordinates."""

from __future__ import annotations

import numba
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
NEGATIVE_SAMPLES = 5  # UMAP's negative_sample_rate


def place_by_neighbours(embedded: np.ndarray, idx: np.ndarray, dist: np.ndarray, min_dist: float = 0.1,
                        epochs: int = PLACE_EPOCHS) -> np.ndarray:
    """UMAP's ``transform`` for points it did not fit, from their nearest fitted points (``idx`` and
    ``dist``, nearest first): start at the neighbours' mean weighted by UMAP's membership strengths,
    then ``epochs`` of UMAP's layout optimisation that move only the new points. A point equal to a
    fitted one takes that one's place: a served model asked about a training image answers what the
    study found for it. Deterministic: a fixed random stream per point, the same on any number of threads.

    Written here rather than called from umap-learn, whose numba functions are compiled again in
    every process (~9 s of a served model's start): the numpy parts need no compiling and the one
    loop (``_move_new_points``) is compiled once per machine into ``$NUMBA_CACHE_DIR``.
    """
    embedded = np.ascontiguousarray(embedded, dtype=np.float32)
    idx, dist = np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(dist, dtype=np.float64)
    weights = _membership_strengths(dist)
    placed = np.einsum("nk,nkd->nd", weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12),
                       embedded[idx]).astype(np.float32)
    if epochs > 0 and len(idx):
        weights = weights.ravel()
        keep = weights >= weights.max() / float(epochs)  # UMAP drops edges it would never sample
        head = np.repeat(np.arange(len(idx)), idx.shape[1])[keep]
        starts = np.searchsorted(head, np.arange(len(idx) + 1)).astype(np.int64)  # each point's edges
        a, b = _ab_params(float(min_dist))
        placed = np.ascontiguousarray(placed)
        _move_new_points(placed, embedded, starts, idx.ravel()[keep], weights.max() / weights[keep],
                         a, b, epochs, PLACE_SEED)
    same = dist[:, 0] == 0
    placed[same] = embedded[idx[same, 0]]
    return placed


def _membership_strengths(dist: np.ndarray, n_iter: int = 64, tolerance: float = 1e-5) -> np.ndarray:
    """UMAP's ``smooth_knn_dist`` + ``compute_membership_strengths`` as ``transform`` calls them (local
    connectivity 0, so no distance is subtracted): per point the bandwidth σ at which the strengths of
    its neighbours after the first sum to log2(k), found by bisection; strength exp(−d/σ), 1 at d = 0."""
    n, k = dist.shape
    target = np.log2(k)
    lo, hi, sigma = np.zeros(n), np.full(n, np.inf), np.ones(n)
    active = np.ones(n, dtype=bool)
    rest = dist[:, 1:]
    for _ in range(n_iter):
        total = np.where(rest > 0, np.exp(-rest / sigma[:, None]), 1.0).sum(axis=1)
        active &= np.abs(total - target) >= tolerance
        if not active.any():
            break
        above = active & (total > target)
        below = active & ~(total > target)
        hi[above] = sigma[above]
        sigma[above] = (lo[above] + hi[above]) / 2.0
        lo[below] = sigma[below]
        sigma[below] = np.where(np.isinf(hi[below]), sigma[below] * 2.0, (lo[below] + hi[below]) / 2.0)
    sigma = np.maximum(sigma, 1e-3 * dist.mean())  # UMAP's MIN_K_DIST_SCALE
    return np.where(dist > 0, np.exp(-dist / sigma[:, None]), 1.0)


def _ab_params(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """UMAP's curve 1 / (1 + a·d^2b) fitted to its offset exponential (``find_ab_params``)."""
    from scipy.optimize import curve_fit

    x = np.linspace(0, spread * 3, 300)
    y = np.where(x < min_dist, 1.0, np.exp(-(x - min_dist) / spread))
    (a, b), _ = curve_fit(lambda d, a, b: 1.0 / (1.0 + a * d ** (2 * b)), x, y)
    return float(a), float(b)


def _jit(function):
    """Compiled with numba, cached on disk — each process loads it instead of compiling it — and
    parallel over ``prange`` loops (``NUMBA_NUM_THREADS``; a study's workers share the cores)."""
    return numba.njit(cache=True, fastmath=True, parallel=True)(function)


@_jit
def _move_new_points(placed, fitted, starts, tail, epochs_per_sample, a, b, n_epochs, seed):  # pragma: no cover
    """UMAP's SGD with ``move_other=False``: each edge (new point → fitted point) is sampled once
    every ``epochs_per_sample`` epochs (the strongest every epoch), pulling the new point closer; each
    sample also pushes it away from ``NEGATIVE_SAMPLES`` random fitted points. Only ``placed`` moves.

    A new point's moves depend on nothing but its own edges and the fitted points, so the points are
    placed in parallel (new point ``j``'s edges are ``starts[j]:starts[j + 1]``), each with a random
    stream of its own drawn from ``seed`` and ``j``: the same coordinates on any number of threads."""
    n_fitted, dim = fitted.shape
    for j in numba.prange(starts.shape[0] - 1):
        first, last = starts[j], starts[j + 1]
        state = (seed * 1000003 + j * 7919 + 1) % 2147483647 or 1  # a Park–Miller stream per point
        next_sample = epochs_per_sample[first:last].copy()
        per_negative = epochs_per_sample[first:last] / 5.0
        next_negative = per_negative.copy()
        for epoch in range(n_epochs):
            alpha = 0.25 * (1.0 - epoch / n_epochs)  # UMAP's transform: a quarter of the fit's learning rate
            for e in range(last - first):
                if next_sample[e] > epoch:
                    continue
                i = first + e
                d2 = 0.0
                for d in range(dim):
                    d2 += (placed[j, d] - fitted[tail[i], d]) ** 2
                coeff = -2.0 * a * b * d2 ** (b - 1.0) / (a * d2 ** b + 1.0) if d2 > 0.0 else 0.0
                for d in range(dim):
                    placed[j, d] += min(4.0, max(-4.0, coeff * (placed[j, d] - fitted[tail[i], d]))) * alpha
                next_sample[e] += epochs_per_sample[i]
                negatives = int((epoch - next_negative[e]) / per_negative[e])
                for _ in range(negatives):
                    state = (state * 48271) % 2147483647
                    k = state % n_fitted
                    d2 = 0.0
                    for d in range(dim):
                        d2 += (placed[j, d] - fitted[k, d]) ** 2
                    if d2 <= 0.0:
                        continue
                    coeff = 2.0 * b / ((0.001 + d2) * (a * d2 ** b + 1.0))
                    for d in range(dim):
                        placed[j, d] += min(4.0, max(-4.0, coeff * (placed[j, d] - fitted[k, d]))) * alpha
                next_negative[e] += negatives * per_negative[e]
