"""Pre-scaling and dimensionality reduction, each reducer registered once with its search space.

A reducer is an sklearn-style transformer (``fit_transform`` / ``transform``). ``ReductionCache``
keeps the reduced coordinates by (data fingerprint, parameters, seed) in memory and on disk, so
trials that share a reduction — in this process, a resumed one, or a parallel worker — fit it once;
and it builds UMAP's nearest-neighbour graph once per (data, scaling, metric) at the largest
``n_neighbors`` of the search space, handing every UMAP fit its slice (``precomputed_knn``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from selector.files import write_atomic
from selector.sampling import merge, outside, seeded_sample

logger = logging.getLogger(__name__)

SCALINGS = ("none", "zscore", "l2")
# Part of every reduction's cache key: bump it whenever a reducer's build changes what it computes,
# so no stale coordinates are served from disk.
REDUCTION_VERSION = 4
UMAP_NEIGHBORS = (5, 10, 15, 30, 50)
# Below this many points the shared graph is exact (brute force: 10,000 × 256 took 1 s, cosine 4 s;
# NN-descent took 50 s with its numba compilation). UMAP itself switches at 4,096, so a served refit
# between 4,096 and 10,000 points starts from NN-descent's graph (recall > 0.9), not the exact one.
EXACT_KNN_BOUND = 10_000


class Identity(BaseEstimator, TransformerMixin):
    """The do-nothing reducer, for ablations and for data that is already small."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float32)


def make_scaler(scaling: str):
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

    if scaling == "zscore":
        return StandardScaler()
    if scaling == "l2":
        return Normalizer(norm="l2")
    if scaling == "none":
        return FunctionTransformer(validate=False)
    raise ValueError(f"`reducer.scaling` must be one of {', '.join(SCALINGS)}; got {scaling!r}.")


@dataclass(frozen=True)
class ReducerSpec:
    """A reducer's factory, its Optuna search space, and how many points it fits at most: above
    ``max_fit_points`` it fits a seeded sample and places the other points (``transform``)."""

    name: str
    build: Callable[[dict, int, int], Any]  # (params, n_points, seed) -> transformer
    suggest: Callable[[Any, int, int], dict]  # (trial, n_points, n_features) -> params
    max_fit_points: int | None = None


def _suggest_none(trial, n: int, dim: int) -> dict:
    return {}


def _build_none(params: dict, n: int, seed: int):
    return Identity()


def _suggest_pca(trial, n: int, dim: int) -> dict:
    # One fixed grid for every data set (Optuna's categorical spaces cannot change between trials);
    # the build clips to what the data allows.
    return {"n_components": trial.suggest_categorical("reducer.n_components", [2, 5, 10, 20, 50])}


def _build_pca(params: dict, n: int, seed: int):
    return ClippedPCA(n_components=int(params["n_components"]), random_state=seed)


class ClippedPCA(BaseEstimator, TransformerMixin):
    """PCA whose ``n_components`` is clipped to what the data allows (fewer features than asked)."""

    def __init__(self, n_components: int = 2, random_state: int | None = None):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y=None):
        from sklearn.decomposition import PCA

        X = np.asarray(X)
        k = max(1, min(self.n_components, X.shape[0] - 1, X.shape[1]))
        self.pca_ = PCA(n_components=k, random_state=self.random_state).fit(X)
        return self

    def transform(self, X):
        return self.pca_.transform(X)


def _suggest_umap(trial, n: int, dim: int) -> dict:
    # Categorical grids, not continuous ranges: trials that meet the same reduction reuse it.
    return {
        "n_components": trial.suggest_categorical("reducer.n_components", [2, 5, 10, 20, 50]),
        "n_neighbors": trial.suggest_categorical("reducer.n_neighbors", list(UMAP_NEIGHBORS)),
        "min_dist": trial.suggest_categorical("reducer.min_dist", [0.0, 0.1, 0.5]),
        "metric": trial.suggest_categorical("reducer.metric", ["euclidean", "cosine"]),
    }


def _build_umap(params: dict, n: int, seed: int):
    import umap

    return umap.UMAP(
        n_components=max(1, min(int(params["n_components"]), n - 2)),
        n_neighbors=max(2, min(int(params["n_neighbors"]), n - 1)),
        min_dist=float(params["min_dist"]),
        metric=params.get("metric", "euclidean"),
        # UMAP's own default above 10,000 points; below that it runs 500 epochs, for layouts that
        # change little — 200 halves the cost of every UMAP trial.
        n_epochs=200,
        random_state=seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so silences its warning
        # Spectral initialisation fails on tiny or disconnected graphs; random is always defined.
        init="spectral" if n > 100 else "random",
    )


REDUCERS: dict[str, ReducerSpec] = {
    spec.name: spec
    for spec in (
        ReducerSpec("none", _build_none, _suggest_none),
        ReducerSpec("pca", _build_pca, _suggest_pca),
        # Its cost grows with points × epochs × n_components; at 50,000 × 256 one fit took 39 s
        # (2 components) to 165 s (50), after a 97 s neighbour graph. Above 10,000 it fits a sample.
        ReducerSpec("umap", _build_umap, _suggest_umap, max_fit_points=10_000),
    )
}


def get_reducer(name: str) -> ReducerSpec:
    try:
        return REDUCERS[name]
    except KeyError:
        raise ValueError(f"unknown reducer {name!r}; valid: {', '.join(REDUCERS)}.") from None


def build_reducer(params: dict, n: int, seed: int):
    """An sklearn Pipeline: scaling then the named reducer (``params`` as logged, without prefix)."""
    from sklearn.pipeline import make_pipeline

    spec = get_reducer(params.get("name", "none"))
    own = {k: v for k, v in params.items() if k not in ("name", "scaling")}
    return make_pipeline(make_scaler(params.get("scaling", "none")), spec.build(own, n, seed))


def fit_sample(params: dict, n: int, seed: int) -> np.ndarray | None:
    """The seeded sample the named reducer fits when ``n`` points are more than it fits; else ``None``.
    Trials (``ReductionCache``) and the served refit (``fit_reduce``) draw the same one."""
    return seeded_sample(n, get_reducer(params.get("name", "none")).max_fit_points, seed)


def fit_reduce(params: dict, X: np.ndarray, seed: int):
    """The fitted reducer (scaling + reducer) and ``X`` reduced — fitted on the reducer's seeded
    sample when ``X`` has more points than it fits, the other points placed by its ``transform``."""
    X = np.asarray(X, dtype=np.float32)
    sample = fit_sample(params, len(X), seed)
    fitted_on = X if sample is None else X[sample]
    reducer = build_reducer(params, len(fitted_on), seed)
    fitted = np.asarray(reducer.fit_transform(fitted_on), dtype=np.float32)
    if sample is None:
        return reducer, fitted
    rest = np.asarray(reducer.transform(X[outside(len(X), sample)]), dtype=np.float32)
    return reducer, merge(sample, fitted, rest)


def place_by_neighbours(embedded: np.ndarray, idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """UMAP's ``transform`` start for points it did not fit: each point at the mean of its nearest
    fitted points' coordinates, weighted by UMAP's membership strengths (its refining epochs are left out)."""
    from scipy.sparse import csr_matrix
    from umap.umap_ import smooth_knn_dist

    k = idx.shape[1]
    sigmas, rhos = smooth_knn_dist(dist, float(k), local_connectivity=0.0)  # as UMAP.transform
    weights = np.exp(-np.maximum(dist - rhos[:, None], 0.0) / sigmas[:, None])
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = csr_matrix((weights.ravel(), idx.ravel(), np.arange(0, idx.size + 1, k)),
                        shape=(len(idx), len(embedded)))
    return np.asarray(matrix @ embedded, dtype=np.float32)


def suggest_reducer(trial, n: int, dim: int, names: list[str] | None = None) -> dict:
    """Define-by-run: scaling, the reducer's name, then its own parameters."""
    scaling = trial.suggest_categorical("reducer.scaling", list(SCALINGS))
    name = trial.suggest_categorical("reducer", names or list(REDUCERS))
    return {"name": name, "scaling": scaling, **get_reducer(name).suggest(trial, n, dim)}


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("umap-learn", "pynndescent", "scikit-learn")}


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


class ReductionCache:
    """Reduced coordinates by (data, params, seed): a dict in memory backed by ``.npy`` files; and
    the nearest-neighbour graphs UMAP fits share, by (data, scaling, metric), kept the same way."""

    def __init__(self, root: Path | None, data_key: str):
        self.root, self.data_key = root, data_key
        self.memory: dict[str, np.ndarray] = {}
        self.graphs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.fits = 0  # reductions actually computed (tests and benchmarks read this)
        self.graph_builds = 0  # nearest-neighbour graphs actually computed

    def key(self, params: dict, seed: int) -> str:
        blob = json.dumps({"data": self.data_key, "params": params, "seed": seed, "version": REDUCTION_VERSION,
                           "libraries": _library_versions()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def reduce(self, X: np.ndarray, params: dict, seed: int) -> np.ndarray:
        def compute():
            if params.get("name") == "umap":
                reduced = self._fit_umap(X, params, seed)
            else:
                reduced = build_reducer(params, len(X), seed).fit_transform(X)
            self.fits += 1
            return np.asarray(reduced, dtype=np.float32)

        return self._once(self.memory, self.key(params, seed), ".npy", compute,
                          load=lambda path: np.load(path, allow_pickle=False), save=np.save)

    def _once(self, memory: dict, key: str, suffix: str, compute, load, save):
        """``memory[key]``, else the file ``<key><suffix>``, else ``compute()`` written to that file —
        under a per-key lock, so processes sharing the cache directory compute each value once."""
        if key in memory:
            return memory[key]
        path = self.root / f"{key}{suffix}" if self.root else None
        with self._computing(key):
            if path is not None and path.is_file():
                try:
                    memory[key] = load(path)
                    return memory[key]
                except (OSError, ValueError, KeyError):
                    logger.warning("ignoring unreadable cache file %s", path)
            value = memory[key] = compute()
            if path is not None:
                write_atomic(path, lambda handle: save(handle, value))
        return value

    @contextlib.contextmanager
    def _computing(self, key: str):
        """An exclusive ``flock`` per key: a second worker waits for the first one's file instead of
        fitting the same reduction beside it (workers that start together all need the evaluation space)."""
        if self.root is None:
            yield
            return
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.computing", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _fit_umap(self, X: np.ndarray, params: dict, seed: int) -> np.ndarray:
        """UMAP through the shared graphs; above its bound it fits the seeded sample (the same for
        every trial) and the other points are placed by their nearest sampled neighbours."""
        scaling = params.get("scaling", "none")
        scaled = np.asarray(make_scaler(scaling).fit_transform(X), dtype=np.float32)
        sample = fit_sample(params, len(X), seed)
        fitted_on = scaled if sample is None else scaled[sample]
        model = _build_umap({k: v for k, v in params.items() if k not in ("name", "scaling")}, len(fitted_on), seed)
        idx, dist = self.neighbour_graph(fitted_on, scaling, model.metric, seed)
        k = model.n_neighbors
        with warnings.catch_warnings():  # "transform will not be available": trials never transform
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            warnings.filterwarnings("ignore", message=".*transform will not be available.*")
            # Copies: UMAP marks disconnected neighbours in place.
            model.set_params(precomputed_knn=(idx[:, :k].copy(), dist[:, :k].copy(), None))
            embedded = np.asarray(model.fit_transform(fitted_on), dtype=np.float32)
        if sample is None:
            return embedded
        near, near_dist = self.sample_neighbours(scaled, sample, scaling, model.metric, seed)
        return merge(sample, embedded, place_by_neighbours(embedded, near[:, :k], near_dist[:, :k]))

    def sample_neighbours(self, scaled: np.ndarray, sample: np.ndarray, scaling: str, metric: str, seed: int):
        """For each point outside ``sample``, its nearest sampled points (rows of the sample), at the
        largest ``n_neighbors`` of the search space: computed once per (data, scaling, metric)."""
        from sklearn.neighbors import NearestNeighbors

        k = min(max(UMAP_NEIGHBORS), len(sample))

        def compute():
            search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(scaled[sample])
            dist, idx = search.kneighbors(scaled[outside(len(scaled), sample)])
            self.graph_builds += 1
            return idx.astype(np.int32), dist.astype(np.float32)

        key = self.key({"graph": "to-sample", "scaling": scaling, "metric": metric, "k": k,
                        "points": len(scaled), "sample": len(sample)}, seed)
        return self._once(self.graphs, key, ".knn.npz", compute, _load_graph, _save_graph)

    def neighbour_graph(self, scaled: np.ndarray, scaling: str, metric: str, seed: int):
        """The graph of ``scaled`` (all points, or the fitted sample) at the largest ``n_neighbors``
        of the search space, built once."""
        k = min(max(UMAP_NEIGHBORS), len(scaled) - 1)

        def compute():
            graph = nearest_neighbours(scaled, k, metric, seed)
            self.graph_builds += 1
            return graph

        key = self.key({"graph": "knn", "scaling": scaling, "metric": metric, "k": k, "points": len(scaled)}, seed)
        return self._once(self.graphs, key, ".knn.npz", compute, _load_graph, _save_graph)


def _load_graph(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return stored["idx"], stored["dist"]


def _save_graph(handle, graph: tuple[np.ndarray, np.ndarray]) -> None:
    np.savez(handle, idx=graph[0], dist=graph[1])
