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
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from selector.files import read_verified, unreadable, write_cache
from selector.names import Registry
from selector.quiet import known_noise
from selector.neighbours import nearest_fitted, nearest_neighbours, place_by_neighbours
from selector.sampling import fit_and_place, outside, seeded_sample

logger = logging.getLogger(__name__)

SCALINGS = ("none", "zscore", "l2")
# Part of every reduction's cache key: bump it whenever a reducer's build changes what it computes,
# so no stale coordinates are served from disk.
REDUCTION_VERSION = 6
UMAP_NEIGHBORS = (5, 10, 15, 30, 50)


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
    ``max_fit_points`` it fits a seeded sample and places the other points (``transform``).

    ``trial_fit(cache, X, params, seed)``, when set, is how trials fit it through the study's
    ``ReductionCache`` instead of a plain ``fit_reduce`` — UMAP's hook for the shared neighbour graph.
    """

    name: str
    build: Callable[[dict, int, int], Any]  # (params, n_points, seed) -> transformer
    suggest: Callable[[Any, int, int], dict]  # (trial, n_points, n_features) -> params
    max_fit_points: int | None = None
    trial_fit: Callable[["ReductionCache", np.ndarray, dict, int], np.ndarray] | None = None


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


def _umap(params: dict, n: int, seed: int):
    """umap-learn's UMAP with selector's settings, for ``n`` points."""
    import umap

    from selector.compiled import cache_umap_compilation

    cache_umap_compilation()
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


def _graph_k(n: int) -> int:
    """The neighbours a UMAP graph is built with: the largest ``n_neighbors`` of the search space (each
    fit takes its slice), so a trial's shared graph and a served refit's own graph are the same."""
    return min(max(UMAP_NEIGHBORS), n - 1)


class GraphUMAP(BaseEstimator, TransformerMixin):
    """UMAP fitted on an exact nearest-neighbour graph — the study's shared one in trials
    (``fit(X, knn=…)``), its own otherwise — and placing new points by ``place_by_neighbours``.

    Why not ``umap.UMAP`` as is: below 4,096 points it builds its graph from a dense distance matrix,
    whose weights differ from the shared graph's in the sixth decimal, and 200 epochs of SGD turn that
    into another layout — the served refit would not be the trial that was scored. New points are
    placed as UMAP's ``transform`` places them, from exact neighbours, which is also how trials place
    the points outside UMAP's sample: one rule, so trial and served model agree on every point.
    """

    def __init__(self, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
                 metric: str = "euclidean", random_state: int = 0):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

    def fit(self, X, y=None, knn: tuple[np.ndarray, np.ndarray] | None = None):
        self.fit_transform(X, knn=knn)
        return self

    def fit_transform(self, X, y=None, knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        X = np.asarray(X, dtype=np.float32)
        params = {"n_components": self.n_components, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist,
                  "metric": self.metric}
        model = _umap(params, len(X), self.random_state)
        idx, dist = knn if knn is not None else nearest_neighbours(X, _graph_k(len(X)), self.metric, self.random_state)
        k = model.n_neighbors
        # "transform will not be available": new points are placed here, not by umap-learn
        with known_noise(".*knn_search_index.*", ".*transform will not be available.*"):
            # Copies: UMAP marks disconnected neighbours in place.
            model.set_params(precomputed_knn=(idx[:, :k].copy(), dist[:, :k].copy(), None))
            self.embedding_ = np.asarray(model.fit_transform(X), dtype=np.float32)
        self.train_ = X  # the search keeps this same array (no copy), and pickles it once
        self.neighbours_ = NearestNeighbors(n_neighbors=k, metric=self.metric, algorithm="brute").fit(X)
        self.n_features_in_ = X.shape[1]
        return self.embedding_

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "embedding_"):
            raise RuntimeError("GraphUMAP is not fitted; call fit first.")
        idx, dist = nearest_fitted(self.neighbours_, self.train_, X)
        return place_by_neighbours(self.embedding_, idx, dist, self.min_dist)


def _build_umap(params: dict, n: int, seed: int) -> GraphUMAP:
    n_components = max(1, min(int(params["n_components"]), n - 2))
    return GraphUMAP(n_components=n_components, n_neighbors=max(2, min(int(params["n_neighbors"]), n - 1)),
                     min_dist=float(params["min_dist"]), metric=params.get("metric", "euclidean"), random_state=seed)


def _umap_on_shared_graph(cache: "ReductionCache", X: np.ndarray, params: dict, seed: int) -> np.ndarray:
    """A trial's UMAP: ``GraphUMAP`` on the study's shared neighbour graph; above its bound it fits the
    seeded sample (the same for every trial) and the other points are placed by their nearest
    sampled neighbours, also shared — the numbers ``fit_reduce`` gives, without recomputing graphs."""
    scaling = params.get("scaling", "none")
    scaled = np.asarray(make_scaler(scaling).fit_transform(X), dtype=np.float32)
    sample = fit_sample(params, len(X), seed)
    model = _build_umap(params, len(X) if sample is None else len(sample), seed)

    def fit(points: np.ndarray) -> np.ndarray:
        return model.fit_transform(points, knn=cache.neighbour_graph(points, scaling, model.metric, seed))

    def place(rest: np.ndarray) -> np.ndarray:
        near, near_dist = cache.sample_neighbours(scaled, sample, scaling, model.metric, seed)
        k = model.n_neighbors
        return place_by_neighbours(model.embedding_, near[:, :k], near_dist[:, :k], model.min_dist)

    return fit_and_place(scaled, sample, fit, place)


REDUCERS: Registry[ReducerSpec] = Registry("reducer")
register_reducer = REDUCERS.add


register_reducer(ReducerSpec("none", _build_none, _suggest_none))
register_reducer(ReducerSpec("pca", _build_pca, _suggest_pca))
# Its cost grows with points × epochs × n_components; at 50,000 × 256 one fit took 39 s
# (2 components) to 165 s (50), after a 97 s neighbour graph. Above 10,000 it fits a sample.
register_reducer(ReducerSpec("umap", _build_umap, _suggest_umap, max_fit_points=10_000,
                             trial_fit=_umap_on_shared_graph))


def get_reducer(name: str) -> ReducerSpec:
    """The registered reducer ``name``; an unknown or empty name raises and lists the valid ones."""
    return REDUCERS.find(name)


def build_reducer(params: dict, n: int, seed: int):
    """An sklearn Pipeline: scaling then the named reducer (``params`` as logged, without prefix)."""
    from sklearn.pipeline import make_pipeline

    spec = get_reducer(params.get("name"))
    own = {k: v for k, v in params.items() if k not in ("name", "scaling")}
    return make_pipeline(make_scaler(params.get("scaling", "none")), spec.build(own, n, seed))


def fit_sample(params: dict, n: int, seed: int) -> np.ndarray | None:
    """The seeded sample the named reducer fits when ``n`` points are more than it fits; else ``None``.
    Trials (``ReductionCache``) and the served refit (``fit_reduce``) draw the same one."""
    return seeded_sample(n, get_reducer(params.get("name")).max_fit_points, seed)


def fit_reduce(params: dict, X: np.ndarray, seed: int):
    """The fitted reducer (scaling + reducer) and ``X`` reduced — fitted on the reducer's seeded
    sample when ``X`` has more points than it fits, the other points placed by its ``transform``."""
    X = np.asarray(X, dtype=np.float32)
    sample = fit_sample(params, len(X), seed)
    reducer = build_reducer(params, len(X) if sample is None else len(sample), seed)
    reduced = fit_and_place(X, sample, lambda points: np.asarray(reducer.fit_transform(points), dtype=np.float32),
                            lambda rest: np.asarray(reducer.transform(rest), dtype=np.float32))
    return reducer, reduced


def suggest_reducer(trial, n: int, dim: int, names: list[str] | None = None) -> dict:
    """Define-by-run: scaling, the reducer's name, then its own parameters."""
    scaling = trial.suggest_categorical("reducer.scaling", list(SCALINGS))
    name = trial.suggest_categorical("reducer", names or list(REDUCERS))
    return {"name": name, "scaling": scaling, **get_reducer(name).suggest(trial, n, dim)}


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("umap-learn", "pynndescent", "scikit-learn")}


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
        spec = get_reducer(params.get("name"))

        def compute():
            if spec.trial_fit is not None:
                reduced = spec.trial_fit(self, X, params, seed)
            else:
                reduced = fit_reduce(params, X, seed)[1]
            self.fits += 1
            return np.asarray(reduced, dtype=np.float32)

        return self._once(self.memory, self.key(params, seed), ".npy", compute,
                          load=lambda path: np.load(io.BytesIO(read_verified(path)), allow_pickle=False), save=np.save)

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
                except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                    unreadable(path, exc)
            value = memory[key] = compute()
            if path is not None and not write_cache(path, lambda handle: save(handle, value)):
                self.root = None  # not writable: this study goes on in memory
        return value

    @contextlib.contextmanager
    def _computing(self, key: str):
        """An exclusive ``flock`` per key: a second worker waits for the first one's file instead of
        fitting the same reduction beside it (workers that start together all need the evaluation space)."""
        if self.root is None:
            yield
            return
        from selector.locks import file_lock

        path = self.root / f"{key}.computing"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as exc:  # an unwritable cache folder: no lock, and nothing will be written there
            logger.warning("cannot use the cache folder %s (%s); this study keeps its reductions in memory",
                           self.root, exc.strerror or exc)
            self.root = None
            yield
            return
        with file_lock(path):
            yield

    def sample_neighbours(self, scaled: np.ndarray, sample: np.ndarray, scaling: str, metric: str, seed: int):
        """For each point outside ``sample``, its nearest sampled points (rows of the sample), at the
        largest ``n_neighbors`` of the search space: computed once per (data, scaling, metric)."""
        from sklearn.neighbors import NearestNeighbors

        k = min(max(UMAP_NEIGHBORS), len(sample))

        def compute():
            fitted = scaled[sample]
            search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(fitted)
            graph = nearest_fitted(search, fitted, scaled[outside(len(scaled), sample)])
            self.graph_builds += 1
            return graph

        key = self.key({"graph": "to-sample", "scaling": scaling, "metric": metric, "k": k,
                        "points": len(scaled), "sample": len(sample)}, seed)
        return self._once(self.graphs, key, ".knn.npz", compute, _load_graph, _save_graph)

    def neighbour_graph(self, scaled: np.ndarray, scaling: str, metric: str, seed: int):
        """The graph of ``scaled`` (all points, or the fitted sample) at the largest ``n_neighbors``
        of the search space, built once."""
        k = _graph_k(len(scaled))

        def compute():
            graph = nearest_neighbours(scaled, k, metric, seed)
            self.graph_builds += 1
            return graph

        key = self.key({"graph": "knn", "scaling": scaling, "metric": metric, "k": k, "points": len(scaled)}, seed)
        return self._once(self.graphs, key, ".knn.npz", compute, _load_graph, _save_graph)


def _load_graph(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(read_verified(path)), allow_pickle=False) as stored:
        return stored["idx"], stored["dist"]


def _save_graph(handle, graph: tuple[np.ndarray, np.ndarray]) -> None:
    np.savez(handle, idx=graph[0], dist=graph[1])
