"""A fitted reduce→cluster pipeline: what a study's trial becomes when it is refitted to serve."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted

from selector.stages.clustering import ClusterModel
from selector.stages.reduction import fit_reduce

logger = logging.getLogger(__name__)


def typed(value):
    """A parameter read back as a string (an MLflow param of a study whose Optuna study is gone):
    ints, floats and names, in that order of trial."""
    if not isinstance(value, str):
        return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


class ClusterPipeline(ClusterMixin, BaseEstimator):
    """Scaling + reducer + clusterer as one scikit-learn estimator, fitted together on the data (or
    the stages' seeded samples) with one seed.

    ``reducer`` and ``clusterer`` are a trial's parameters as the search space names them
    (``{"name": "umap", "n_components": 10, …}``, ``{"name": "hdbscan", "min_cluster_size": 20, …}``).
    ``predict`` gives cluster ids (−1 = noise); ``assign`` gives ids and confidences in [0, 1].
    """

    def __init__(self, reducer: dict | None = None, clusterer: dict | None = None, seed: int = 0):
        self.reducer = reducer
        self.clusterer = clusterer
        self.seed = seed

    def fit(self, X, y=None) -> "ClusterPipeline":
        if not self.reducer or not self.clusterer:
            raise ValueError("`reducer` and `clusterer` must be a trial's parameters with a 'name'; "
                             f"got {self.reducer!r} and {self.clusterer!r}.")
        vectors = np.asarray(X, dtype=np.float32)
        reducer = {k: typed(v) for k, v in self.reducer.items()}
        clusterer = {k: typed(v) for k, v in self.clusterer.items()}
        # As in the study: above the reducer's bound it fits the same seeded sample.
        self.reducer_, self.reduced_ = fit_reduce(reducer, vectors, self.seed)
        self.cluster_model_ = ClusterModel(clusterer, seed=self.seed).fit(self.reduced_)
        self.labels_ = self.cluster_model_.labels_
        self.n_features_in_ = vectors.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        """``X`` in the pipeline's reduced space."""
        check_is_fitted(self, "reducer_")
        return np.asarray(self.reducer_.transform(np.asarray(X, dtype=np.float32)), dtype=np.float32)

    def assign(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Cluster ids (−1 = noise) and confidences in [0, 1] for new vectors."""
        return self.cluster_model_.place(self.transform(X))

    def predict(self, X) -> np.ndarray:
        """Cluster ids (−1 = noise) for new vectors."""
        return self.assign(X)[0]


class FittedPipeline(ClusterPipeline):
    """The pipeline class of models registered before ``ClusterPipeline`` (model format 2, a pickle):
    their own copy of the serving code calls ``predict`` for ``(labels, confidences)``, so here it gives
    both. Unpickling one says, once, how to get the pickle-free format."""

    def predict(self, X) -> tuple[np.ndarray, np.ndarray]:
        return self.assign(X)

    def __setstate__(self, state):
        global _WARNED
        if not _WARNED:
            _WARNED = True
            logger.warning("loading a model whose pipeline is a pickle (format 2, registered by an older selector); "
                           "re-register its study (`selector register --study_run_id <its study_run_id tag>`) for the "
                           "pickle-free format")
        super().__setstate__(state)


_WARNED = False
