"""Clusterers behind a registry: each with its factory, its Optuna search space and its way of
placing new points (a ``Placement``), side by side.

``ClusterModel`` is a fitted clusterer that can also place points it never saw: native ``predict``
(k-means, Gaussian mixture), HDBSCAN's ``approximate_predict``, or a vote of the nearest training
points in the reduced space (agglomerative, spectral, affinity propagation). Labels are ints,
``-1`` for noise; confidences lie in [0, 1].
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from selector.names import Registry
from selector.quiet import known_noise
from selector.sampling import fit_and_place, seeded_sample

logger = logging.getLogger(__name__)

NOISE = -1
VOTERS = 15  # neighbours that vote on a new point's cluster
FULL_COVARIANCE_MAX_DIM = 64  # a full-covariance GMM's EM step costs O(n·k·d²)
# Work bounds for k in the hundreds (trials above them are declined, not run for minutes): a
# mixture's EM step costs n·k·d² (full) or n·k·d multiply-adds; spectral clustering's eigen-solver
# about n·k. Measured here: spectral at 2,000 points and k = 400 took 8 s, k = 40 0.5 s.
MIXTURE_WORK = 2e9
SPECTRAL_WORK = 2e6
MANY_DIMS = 64  # above this, tree-based neighbour searches (HDBSCAN) degrade towards brute force


class Declined(ValueError):
    """A clusterer refuses an input it cannot fit at a sane cost: the trial is pruned, not failed."""


MAX_CLUSTERS = 500  # a catalogue of 100,000 photos of 500 products can be answered with k = 500
MIN_CLUSTER_POINTS = 5  # the searched k stops at one cluster per this many points


def max_clusters(n: int) -> int:
    """Upper bound of the searched k: n / 5 (clusters of five points), at most ``MAX_CLUSTERS``;
    k is never taken from labels."""
    return int(max(2, min(MAX_CLUSTERS, n // MIN_CLUSTER_POINTS, n - 1)))


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

    # No prediction data at fit time (about a third of a fit): a trial that fits every point never
    # places one; ``ApproximatePredict`` generates it the first time it places points.
    return hdbscan.HDBSCAN(min_cluster_size=int(p["min_cluster_size"]), min_samples=int(p["min_samples"]),
                           cluster_selection_method=p["cluster_selection_method"], prediction_data=False)


def _spectral(p: dict, Z: np.ndarray, seed: int):
    from sklearn.cluster import SpectralClustering

    if int(p["n_clusters"]) * len(Z) > SPECTRAL_WORK:
        raise Declined(f"spectral clustering with k={p['n_clusters']} on {len(Z)} points needs k eigenvectors of an "
                       f"n × n graph; declined above k·n = {SPECTRAL_WORK:.0e}")

    return SpectralClustering(n_clusters=int(p["n_clusters"]), affinity="nearest_neighbors",
                              n_neighbors=max(2, min(int(p["n_neighbors"]), len(Z) - 1)),
                              assign_labels="cluster_qr", random_state=seed)


def _squared_distances(points: np.ndarray, rows: int = 50) -> np.ndarray:
    """All pairwise squared distances, ``rows`` at a time: the same arithmetic, so the same numbers, as
    one n × n × d broadcast, without its memory traffic (0.4 s → 0.04 s for 1,000 points in 50 dims). A
    float64 ``pdist`` was as fast but moved the preference in the last float32 digit, which changed the
    labels of 1 fit in 54 — and the objective was chosen on these numbers."""
    out = np.empty((len(points), len(points)), dtype=np.result_type(points.dtype, np.float32))
    for start in range(0, len(points), rows):
        out[start:start + rows] = ((points[start:start + rows, None, :] - points[None, :, :]) ** 2).sum(-1)
    return out


def _affinity_propagation(p: dict, Z: np.ndarray, seed: int):
    from selector.propagation import AffinityPropagation  # scikit-learn's, its message passing compiled

    # Similarities are negative squared distances; a lower preference quantile gives fewer clusters.
    sample = Z[np.random.default_rng(seed).choice(len(Z), size=min(len(Z), 1000), replace=False)]
    sq = _squared_distances(sample)
    preference = float(np.quantile(-sq[np.triu_indices(len(sample), 1)], float(p["preference_quantile"])))
    return AffinityPropagation(damping=float(p["damping"]), preference=preference, max_iter=300,
                               convergence_iter=20, random_state=seed)


def _gmm(p: dict, Z: np.ndarray, seed: int):
    from sklearn.mixture import GaussianMixture

    if p["covariance_type"] == "full" and Z.shape[1] > FULL_COVARIANCE_MAX_DIM:
        raise Declined(f"gmm with full covariance costs O(n·k·d²) per EM step; declined for d={Z.shape[1]} > "
                       f"{FULL_COVARIANCE_MAX_DIM} (a reducer first, or diag/spherical covariance)")
    n, d = Z.shape
    work = n * int(p["n_clusters"]) * (d * d if p["covariance_type"] == "full" else d)
    if work > MIXTURE_WORK:
        raise Declined(f"gmm with k={p['n_clusters']} and {p['covariance_type']} covariance on {n} × {d} points "
                       f"costs {work:.1e} per EM step; declined above {MIXTURE_WORK:.0e}")

    return GaussianMixture(n_components=int(p["n_clusters"]), covariance_type=p["covariance_type"],
                           reg_covar=1e-4, random_state=seed)


# --------------------------------------------------------------------------- search spaces
def _suggest_k(trial, n: int) -> int:
    # Log-uniform: k = 2…10 keeps about a third of the draws when k may reach hundreds.
    return trial.suggest_int("clusterer.n_clusters", 2, max_clusters(n), log=True)


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


# --------------------------------------------------------------------------- placing new points
class Placement:
    """How a fitted clusterer places points it did not fit — new points when served, and the points
    outside its seeded sample when it fitted one. ``fit`` returns a copy holding what the rule needs;
    ``place`` gives cluster ids (−1 = noise) and confidences in [0, 1]."""

    name = ""

    def fit(self, estimator, points: np.ndarray, labels: np.ndarray) -> "Placement":
        fitted = copy.copy(self)
        fitted.estimator_ = estimator
        return fitted

    def place(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class OwnPredict(Placement):
    """The estimator's own ``predict``: a mixture's posterior, or k-means' centroid margin."""

    name = "predict"

    def place(self, Z):
        labels = self.estimator_.predict(Z).astype(np.int64)
        if hasattr(self.estimator_, "predict_proba"):
            return labels, self.estimator_.predict_proba(Z).max(axis=1)
        distances = np.sort(self.estimator_.transform(Z), axis=1)
        second = distances[:, 1] if distances.shape[1] > 1 else distances[:, 0]
        # 1 at a centroid, 0 half-way between the two nearest centroids.
        return labels, np.clip(1.0 - distances[:, 0] / np.maximum(second, 1e-12), 0.0, 1.0)


class ApproximatePredict(Placement):
    """HDBSCAN's ``approximate_predict``: the condensed tree's cluster, or noise, with its strength."""

    name = "approximate_predict"

    def place(self, Z):
        import hdbscan

        try:
            self.estimator_.prediction_data_
        except AttributeError:  # the same data ``prediction_data=True`` computes during the fit
            self.estimator_.generate_prediction_data()
        labels, strengths = hdbscan.approximate_predict(self.estimator_, Z)
        return labels.astype(np.int64), np.clip(np.nan_to_num(strengths), 0.0, 1.0)


class NearestVote(Placement):
    """A vote of the ``voters`` nearest fitted points in the reduced space; confidence is the
    winning share. For clusterers without a rule of their own (agglomerative, spectral, ...)."""

    name = "nearest"

    def __init__(self, voters: int = VOTERS):
        self.voters = voters

    def fit(self, estimator, points, labels):
        from sklearn.neighbors import NearestNeighbors

        fitted = super().fit(estimator, points, labels)
        fitted.labels_ = np.asarray(labels, dtype=np.int64)
        fitted.neighbours_ = NearestNeighbors(n_neighbors=min(self.voters, len(points))).fit(
            np.asarray(points, dtype=np.float32))
        return fitted

    def place(self, Z):
        _, index = self.neighbours_.kneighbors(Z)
        votes = self.labels_[index]
        labels = np.array([np.bincount(row - row.min()).argmax() + row.min() for row in votes], dtype=np.int64)
        return labels, (votes == labels[:, None]).mean(axis=1)


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class ClustererSpec:
    """One clusterer: factory, search space, how new points are placed, how its cost grows.

    ``max_fit_points`` bounds what a costly clusterer fits on: above it, it fits a seeded sample and
    the other points are placed by its ``placement``. ``many_dims_fit_points`` and
    ``many_dims_placement``, when set, replace the bound and the rule in more than ``MANY_DIMS``
    dimensions (no reducer before it).
    """

    name: str
    build: Callable[[dict, np.ndarray, int], Any]
    suggest: Callable[[Any, int], dict]
    placement: Placement
    max_fit_points: int | None = None
    scaled_by_sample: tuple[str, ...] = ()  # size parameters that shrink with the sample (counts of points)
    many_dims_fit_points: int | None = None
    many_dims_placement: Placement | None = None
    # Warnings its fit raises that say nothing a user can act on (the trial's score says how it went);
    # regexes of their messages, silenced while it fits (``selector.quiet``).
    known_warnings: tuple[str, ...] = ()

    def fit_bound(self, dim: int) -> int | None:
        """How many points this clusterer fits at most in ``dim`` dimensions (``None``: all)."""
        if self.many_dims_fit_points and dim > MANY_DIMS:
            return self.many_dims_fit_points
        return self.max_fit_points

    def placement_for(self, dim: int) -> Placement:
        """How points it did not fit are placed in ``dim`` dimensions."""
        if self.many_dims_placement is not None and dim > MANY_DIMS:
            return self.many_dims_placement
        return self.placement


CLUSTERERS: Registry[ClustererSpec] = Registry("clusterer", reserved=("all",))  # "all" means every one
register_clusterer = CLUSTERERS.add


# Convergence notices say nothing a user can act on: the trial's score says how the fit went.
register_clusterer(ClustererSpec("kmeans", _kmeans, _suggest_kmeans, OwnPredict(),
                                 known_warnings=("Number of distinct clusters .* found smaller than n_clusters",)))
# n² / 2 float64 distances: 10,000 points → 0.4 GB.
register_clusterer(ClustererSpec("agglomerative", _agglomerative, _suggest_agglomerative, NearestVote(), 10_000))
# Linear memory, but its tree searches degrade towards n² in many dimensions (no reducer):
# in 256 dims 2,000 / 4,000 / 10,000 points took 1.9 / 6.3 / 38 s, in 10 dims 10,000 took 0.9 s;
# and approximate_predict placed 46,000 points in 256 dims in 30 s, so there the rest vote.
register_clusterer(ClustererSpec("hdbscan", _hdbscan, _suggest_hdbscan, ApproximatePredict(), 10_000,
                                 scaled_by_sample=("min_cluster_size",), many_dims_fit_points=4_000,
                                 many_dims_placement=NearestVote()))
# A sparse kNN affinity, but its eigen-solver's time grows much faster than n.
# A disconnected kNN graph makes scikit-learn warn; such a trial is scored like any other.
register_clusterer(ClustererSpec("spectral", _spectral, _suggest_spectral, NearestVote(), 10_000,
                                 known_warnings=("Graph is not fully connected",)))
# Three dense n × n float64 matrices and up to 300 rounds over them (scikit-learn's took ~9 s a fit at
# 2,000 points on one core, bench_scale), so it fits 1,000 and places the rest.
register_clusterer(ClustererSpec("affinity_propagation", _affinity_propagation, _suggest_affinity_propagation,
                                 NearestVote(), 1_000, known_warnings=("Affinity propagation did not converge",)))
register_clusterer(ClustererSpec("gmm", _gmm, _suggest_gmm, OwnPredict(),
                                 known_warnings=("Best performing initialization did not converge",)))


def get_clusterer(name: str) -> ClustererSpec:
    """The registered clusterer ``name``; an unknown or empty name raises and lists the valid ones."""
    return CLUSTERERS.find(name)


def parse_clusterers(text: str) -> list[str]:
    """``"all"`` or a comma list of registered names; anything else lists the valid ones."""
    names = list(CLUSTERERS) if text.strip() in ("", "all") else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in CLUSTERERS]
    if unknown or not names:
        raise ValueError(f"unknown clusterer(s) {unknown or [text]}; valid: all, {', '.join(CLUSTERERS)}.")
    return names


def suggest_clusterer(trial, n: int, names: list[str]) -> dict:
    name = trial.suggest_categorical("clusterer", names)
    return {"name": name, **get_clusterer(name).suggest(trial, n)}


# The layout of a pickled ClusterModel. Format 1 (before placements were objects) kept the rule as a
# string ``assign_``; ``__setstate__`` reads it, so champions registered then still load here.
MODEL_FORMAT = 2


class ClusterModel:
    """A fitted clusterer that labels its training points and places new ones."""

    def __init__(self, params: dict, seed: int = 0):
        self.params = dict(params)
        self.seed = seed

    def fit(self, Z: np.ndarray) -> "ClusterModel":
        spec = get_clusterer(self.params["name"])
        own = {k: v for k, v in self.params.items() if k != "name"}
        rule = spec.placement_for(Z.shape[1])
        sample = seeded_sample(len(Z), spec.fit_bound(Z.shape[1]), self.seed)
        if sample is not None:
            logger.debug("%s fits a seeded sample of %d of %d points in %d dims; the rest are placed by %s",
                        spec.name, len(sample), len(Z), Z.shape[1], rule.name)
            # "at least 500 of 50,000 points" is "at least 100 of a 10,000 sample"
            for name in spec.scaled_by_sample:
                own[name] = max(2, int(round(int(own[name]) * len(sample) / len(Z))))

        def fit(points: np.ndarray) -> np.ndarray:
            self.estimator_ = spec.build(own, points, self.seed)
            with known_noise(*spec.known_warnings):
                self.train_labels_ = np.asarray(self.estimator_.fit_predict(points), dtype=np.int64)
            self.placement_ = rule.fit(self.estimator_, points, self.train_labels_)
            return self.train_labels_

        self.labels_ = fit_and_place(Z, sample, fit, lambda rest: self.placement_.place(rest)[0])
        self.fit_sample_size_ = 0 if sample is None else len(sample)  # 0: fitted on every point
        self.format_ = MODEL_FORMAT
        return self

    def assignment(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The clustering of the points it was fitted on (``Z``, as passed to ``fit``): its labels, and
        each point's confidence as its placement rule gives it (a mixture's posterior, HDBSCAN's
        membership strength, the share of its nearest fitted points that agree)."""
        if len(Z) != len(self.labels_):
            raise ValueError(f"assignment() takes the {len(self.labels_)} points the model was fitted on; got {len(Z)}.")
        return self.labels_, np.clip(self.placement_.place(Z)[1], 0.0, 1.0)

    def predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster ids (−1 = noise) and confidences in [0, 1] for new points in the reduced space."""
        if not hasattr(self, "placement_"):
            raise RuntimeError("ClusterModel is not fitted; call fit first.")
        return self.placement_.place(Z)

    def __setstate__(self, state: dict) -> None:
        if state.get("format_", 1) == 1 and "assign_" in state:
            state = _from_format_1(state)
        elif state.get("format_", 1) != MODEL_FORMAT:
            raise RuntimeError(f"this ClusterModel was saved in format {state.get('format_')}, which this version "
                               f"of selector (format {MODEL_FORMAT}) cannot read; serve it with the code it was "
                               "logged with (`mlflow models serve` does) or register its study again.")
        self.__dict__.update(state)


def _from_format_1(state: dict) -> dict:
    """A format-1 model's rule string and fitted fields, as the placement object that replaced them."""
    rule = state.pop("assign_")
    placement = {"predict": OwnPredict, "approximate_predict": ApproximatePredict, "nearest": NearestVote}[rule]()
    placement.estimator_ = state["estimator_"]
    if rule == "nearest":
        placement.neighbours_ = state.pop("neighbours_")
        state.pop("train_", None)
        # Early format-1 models fitted every point and kept no separate training labels.
        placement.labels_ = state.get("train_labels_", state["labels_"])
    return {**state, "placement_": placement, "format_": MODEL_FORMAT}
