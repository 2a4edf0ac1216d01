"""Clusterers behind a registry: each with its factory, its Optuna search space and its way of
assigning new points, side by side.

``ClusterModel`` is a fitted clusterer that can also place points it never saw: native ``predict``
(k-means, Gaussian mixture), HDBSCAN's ``approximate_predict``, or a vote of the nearest training
points in the reduced space (agglomerative, spectral, affinity propagation). Labels are ints,
``-1`` for noise; confidences lie in [0, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from selector.sampling import merge, outside, seeded_sample

logger = logging.getLogger(__name__)

NOISE = -1
VOTERS = 15  # neighbours that vote on a new point's cluster
FULL_COVARIANCE_MAX_DIM = 64  # a full-covariance GMM's EM step costs O(n·k·d²)
MANY_DIMS = 64  # above this, tree-based neighbour searches (HDBSCAN) degrade towards brute force


class Declined(ValueError):
    """A clusterer refuses an input it cannot fit at a sane cost: the trial is pruned, not failed."""


def max_clusters(n: int) -> int:
    """Upper bound of the searched k: grows like √n (k is never taken from labels)."""
    return int(max(2, min(100, int(np.sqrt(n)), n - 1)))


def _data_scale(Z: np.ndarray) -> float:
    """Root-mean-square distance to the centroid: makes distance thresholds scale-free."""
    spread = float(np.sqrt(((Z - Z.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return spread if spread > 0 else 1.0


# --------------------------------------------------------------------------- factories
def _kmeans(p: dict, Z: np.ndarray, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=int(p["n_clusters"]), n_init=3, random_state=seed)


def _agglomerative(p: dict, Z: np.ndarray, seed: int):
    from sklearn.cluster import AgglomerativeClustering

    if p.get("mode", "k") == "k":
        return AgglomerativeClustering(n_clusters=int(p["n_clusters"]), linkage=p["linkage"])
    return AgglomerativeClustering(n_clusters=None, linkage=p["linkage"],
                                   distance_threshold=float(p["threshold"]) * _data_scale(Z))


def _hdbscan(p: dict, Z: np.ndarray, seed: int):
    import hdbscan

    return hdbscan.HDBSCAN(min_cluster_size=int(p["min_cluster_size"]), min_samples=int(p["min_samples"]),
                           cluster_selection_method=p["cluster_selection_method"], prediction_data=True)


def _spectral(p: dict, Z: np.ndarray, seed: int):
    from sklearn.cluster import SpectralClustering

    return SpectralClustering(n_clusters=int(p["n_clusters"]), affinity="nearest_neighbors",
                              n_neighbors=max(2, min(int(p["n_neighbors"]), len(Z) - 1)),
                              assign_labels="cluster_qr", random_state=seed)


def _affinity_propagation(p: dict, Z: np.ndarray, seed: int):
    from sklearn.cluster import AffinityPropagation

    # Similarities are negative squared distances; a lower preference quantile gives fewer clusters.
    sample = Z[np.random.default_rng(seed).choice(len(Z), size=min(len(Z), 1000), replace=False)]
    sq = ((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1)
    preference = float(np.quantile(-sq[np.triu_indices(len(sample), 1)], float(p["preference_quantile"])))
    return AffinityPropagation(damping=float(p["damping"]), preference=preference, max_iter=300,
                               convergence_iter=20, random_state=seed)


def _gmm(p: dict, Z: np.ndarray, seed: int):
    from sklearn.mixture import GaussianMixture

    if p["covariance_type"] == "full" and Z.shape[1] > FULL_COVARIANCE_MAX_DIM:
        raise Declined(f"gmm with full covariance costs O(n·k·d²) per EM step; declined for d={Z.shape[1]} > "
                       f"{FULL_COVARIANCE_MAX_DIM} (a reducer first, or diag/spherical covariance)")

    return GaussianMixture(n_components=int(p["n_clusters"]), covariance_type=p["covariance_type"],
                           reg_covar=1e-4, random_state=seed)


# --------------------------------------------------------------------------- search spaces
def _suggest_k(trial, n: int) -> int:
    return trial.suggest_int("clusterer.n_clusters", 2, max_clusters(n))


def _suggest_kmeans(trial, n: int) -> dict:
    return {"n_clusters": _suggest_k(trial, n)}


def _suggest_agglomerative(trial, n: int) -> dict:
    params = {"linkage": trial.suggest_categorical("clusterer.linkage", ["ward", "complete", "average", "single"]),
              "mode": trial.suggest_categorical("clusterer.mode", ["k", "threshold"])}
    if params["mode"] == "k":
        params["n_clusters"] = _suggest_k(trial, n)
    else:
        params["threshold"] = trial.suggest_float("clusterer.threshold", 0.05, 3.0, log=True)
    return params


def _suggest_hdbscan(trial, n: int) -> dict:
    return {
        "min_cluster_size": trial.suggest_int("clusterer.min_cluster_size", 5, max(6, n // 5), log=True),
        "min_samples": trial.suggest_int("clusterer.min_samples", 1, 30, log=True),
        "cluster_selection_method": trial.suggest_categorical("clusterer.cluster_selection_method", ["eom", "leaf"]),
    }


def _suggest_spectral(trial, n: int) -> dict:
    return {"n_clusters": _suggest_k(trial, n),
            "n_neighbors": trial.suggest_categorical("clusterer.n_neighbors", [5, 10, 15, 30, 50])}


def _suggest_affinity_propagation(trial, n: int) -> dict:
    return {"damping": trial.suggest_float("clusterer.damping", 0.5, 0.95),
            "preference_quantile": trial.suggest_float("clusterer.preference_quantile", 0.0, 0.5)}


def _suggest_gmm(trial, n: int) -> dict:
    return {"n_clusters": _suggest_k(trial, n),
            "covariance_type": trial.suggest_categorical("clusterer.covariance_type", ["full", "diag", "spherical"])}


@dataclass(frozen=True)
class ClustererSpec:
    """One clusterer: factory, search space, how new points are assigned, how its cost grows.

    ``max_fit_points`` bounds what a costly clusterer fits on: above it, it fits a seeded sample and
    the other points are assigned by the serving rule (nearest sampled neighbours, or HDBSCAN's
    ``approximate_predict``). ``many_dims_fit_points`` and ``many_dims_assign``, when set, replace
    the bound and the rule in more than ``MANY_DIMS`` dimensions (no reducer before it).
    """

    name: str
    build: Callable[[dict, np.ndarray, int], Any]
    suggest: Callable[[Any, int], dict]
    assign: str  # "predict", "approximate_predict" or "nearest"
    memory: str  # "linear" or "quadratic" in the number of points
    max_fit_points: int | None = None
    scaled_by_sample: tuple[str, ...] = ()  # size parameters that shrink with the sample (counts of points)
    many_dims_fit_points: int | None = None
    many_dims_assign: str | None = None

    def fit_bound(self, dim: int) -> int | None:
        """How many points this clusterer fits at most in ``dim`` dimensions (``None``: all)."""
        if self.many_dims_fit_points and dim > MANY_DIMS:
            return self.many_dims_fit_points
        return self.max_fit_points

    def assign_rule(self, dim: int) -> str:
        """How points it did not fit are assigned in ``dim`` dimensions."""
        if self.many_dims_assign and dim > MANY_DIMS:
            return self.many_dims_assign
        return self.assign


CLUSTERERS: dict[str, ClustererSpec] = {
    spec.name: spec
    for spec in (
        ClustererSpec("kmeans", _kmeans, _suggest_kmeans, "predict", "linear"),
        # n² / 2 float64 distances: 10,000 points → 0.4 GB.
        ClustererSpec("agglomerative", _agglomerative, _suggest_agglomerative, "nearest", "quadratic", 10_000),
        # Linear memory, but its tree searches degrade towards n² in many dimensions (no reducer):
        # in 256 dims 2,000 / 4,000 / 10,000 points took 1.9 / 6.3 / 38 s, in 10 dims 10,000 took 0.9 s;
        # and approximate_predict placed 46,000 points in 256 dims in 30 s, so there the rest vote.
        ClustererSpec("hdbscan", _hdbscan, _suggest_hdbscan, "approximate_predict", "linear", 10_000,
                      scaled_by_sample=("min_cluster_size",), many_dims_fit_points=4_000,
                      many_dims_assign="nearest"),
        # A sparse kNN affinity, but its eigen-solver's time grows much faster than n.
        ClustererSpec("spectral", _spectral, _suggest_spectral, "nearest", "quadratic", 10_000),
        # Three dense n × n float64 matrices and up to 300 passes over them: ~9 s a fit at 2,000 points
        # on one core (bench_scale), so it fits 1,000 and assigns the rest.
        ClustererSpec("affinity_propagation", _affinity_propagation, _suggest_affinity_propagation,
                      "nearest", "quadratic", 1_000),
        ClustererSpec("gmm", _gmm, _suggest_gmm, "predict", "linear"),
    )
}


def parse_clusterers(text: str) -> list[str]:
    """``"all"`` or a comma list of registered names; anything else lists the valid ones."""
    names = list(CLUSTERERS) if text.strip() in ("", "all") else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in CLUSTERERS]
    if unknown or not names:
        raise ValueError(f"unknown clusterer(s) {unknown or [text]}; valid: all, {', '.join(CLUSTERERS)}.")
    return names


def get_clusterer(name: str) -> ClustererSpec:
    return CLUSTERERS[parse_clusterers(name)[0]]


def suggest_clusterer(trial, n: int, names: list[str]) -> dict:
    name = trial.suggest_categorical("clusterer", names)
    return {"name": name, **CLUSTERERS[name].suggest(trial, n)}


class ClusterModel:
    """A fitted clusterer that labels its training points and assigns new ones."""

    def __init__(self, params: dict, seed: int = 0):
        self.params = dict(params)
        self.seed = seed

    def fit(self, Z: np.ndarray) -> "ClusterModel":
        spec = get_clusterer(self.params["name"])
        own = {k: v for k, v in self.params.items() if k != "name"}
        self.assign_ = spec.assign_rule(Z.shape[1])
        sample = seeded_sample(len(Z), spec.fit_bound(Z.shape[1]), self.seed)
        fitted_on = Z if sample is None else Z[sample]
        if sample is not None:
            logger.info("%s fits a seeded sample of %d of %d points in %d dims; the rest are assigned by %s",
                        spec.name, len(sample), len(Z), Z.shape[1], self.assign_)
            # "at least 500 of 50,000 points" is "at least 100 of a 10,000 sample"
            for name in spec.scaled_by_sample:
                own[name] = max(2, int(round(int(own[name]) * len(sample) / len(Z))))
        self.estimator_ = spec.build(own, fitted_on, self.seed)
        self.train_labels_ = np.asarray(self.estimator_.fit_predict(fitted_on), dtype=np.int64)
        self.fit_sample_size_ = 0 if sample is None else len(sample)  # 0: fitted on every point
        if self.assign_ == "nearest":
            from sklearn.neighbors import NearestNeighbors

            self.train_ = fitted_on.astype(np.float32)
            self.neighbours_ = NearestNeighbors(n_neighbors=min(VOTERS, len(fitted_on))).fit(self.train_)
        if sample is None:
            self.labels_ = self.train_labels_
        else:
            self.labels_ = merge(sample, self.train_labels_, self.predict(Z[outside(len(Z), sample)])[0])
        return self

    def predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster ids (−1 = noise) and confidences in [0, 1] for new points in the reduced space."""
        if not hasattr(self, "estimator_"):
            raise RuntimeError("ClusterModel is not fitted; call fit first.")
        if self.assign_ == "approximate_predict":
            import hdbscan

            labels, strengths = hdbscan.approximate_predict(self.estimator_, Z)
            return labels.astype(np.int64), np.clip(np.nan_to_num(strengths), 0.0, 1.0)
        if self.assign_ == "predict":
            labels = self.estimator_.predict(Z).astype(np.int64)
            if hasattr(self.estimator_, "predict_proba"):
                return labels, self.estimator_.predict_proba(Z).max(axis=1)
            distances = np.sort(self.estimator_.transform(Z), axis=1)
            second = distances[:, 1] if distances.shape[1] > 1 else distances[:, 0]
            # 1 at a centroid, 0 half-way between the two nearest centroids.
            return labels, np.clip(1.0 - distances[:, 0] / np.maximum(second, 1e-12), 0.0, 1.0)
        _, index = self.neighbours_.kneighbors(Z)
        train_labels = getattr(self, "train_labels_", None)
        if train_labels is None:  # a model saved before sampled fits: its training labels are labels_
            train_labels = self.labels_
        votes = train_labels[index]
        labels = np.array([np.bincount(row - row.min()).argmax() + row.min() for row in votes], dtype=np.int64)
        return labels, (votes == labels[:, None]).mean(axis=1)
