"""Clusterers behind a registry — each one unit in ``selector.stages.clusterers``: its factory, its
Optuna search space and its way of placing new points (a ``Placement``), side by side.

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
from selector.stages.sampling import fit_and_place, seeded_sample

logger = logging.getLogger(__name__)

NOISE = -1
VOTERS = 15  # neighbours that vote on a new point's cluster
MANY_DIMS = 64  # above this, tree-based neighbour searches (HDBSCAN) degrade towards brute force


class Declined(ValueError):
    """A clusterer refuses an input it cannot fit at a sane cost: the trial is pruned, not failed."""


MAX_CLUSTERS = 500  # a catalogue of 100,000 photos of 500 products can be answered with k = 500
MIN_CLUSTER_POINTS = 5  # the searched k stops at one cluster per this many points


def max_clusters(n: int) -> int:
    """Upper bound of the searched k: n / 5 (clusters of five points), at most ``MAX_CLUSTERS``;
    k is never taken from labels."""
    return int(max(2, min(MAX_CLUSTERS, n // MIN_CLUSTER_POINTS, n - 1)))


def data_scale(Z: np.ndarray) -> float:
    """Root-mean-square distance to the centroid: makes distance thresholds scale-free."""
    spread = float(np.sqrt(((Z - Z.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return spread if spread > 0 else 1.0


def suggest_k(trial, n: int) -> int:
    """The number of clusters of a k-based clusterer: log-uniform, so that k = 2…10 keeps about a third
    of the draws when k may reach hundreds."""
    return trial.suggest_int("clusterer.n_clusters", 2, max_clusters(n), log=True)


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
        fitted.points_ = np.asarray(points, dtype=np.float32)  # what a portable model exports (selector.stages.portable)
        fitted.neighbours_ = NearestNeighbors(n_neighbors=min(self.voters, len(points))).fit(fitted.points_)
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


def clusterer(name: str, placement: Placement, **bounds):
    """Register the decorated class — its ``build(params, points, seed)`` and ``suggest(trial, n)`` — as
    clusterer ``name``, placing new points by ``placement``; ``bounds`` are ``ClustererSpec``'s
    (``max_fit_points``, ``scaled_by_sample``, ``many_dims_*``, ``known_warnings``)."""
    def add(unit: type) -> type:
        register_clusterer(ClustererSpec(name, unit.build, unit.suggest, placement, **bounds))
        unit.name = name
        return unit

    return add


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

    def place(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster ids (−1 = noise) and confidences in [0, 1] for new points in the reduced space."""
        if not hasattr(self, "placement_"):
            raise RuntimeError("ClusterModel is not fitted; call fit first.")
        return self.placement_.place(Z)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Cluster ids (−1 = noise) for new points in the reduced space."""
        return self.place(Z)[0]

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


# The registered clusterers, one unit each (imported last: they use what this module defines).
from selector.stages import clusterers  # noqa: E402,F401
