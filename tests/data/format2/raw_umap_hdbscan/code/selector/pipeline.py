"""A fitted reduce→cluster pipeline: what a study's best trial becomes when it is refitted to serve."""

from __future__ import annotations

import numpy as np

from selector.clustering import ClusterModel
from selector.reduction import fit_reduce


def typed(value):
    """Params come back from MLflow as strings: ints, floats and names, in that order of trial."""
    if not isinstance(value, str):
        return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


class FittedPipeline:
    """Scaling + reducer + clusterer, fitted together on the data (or the stages' seeded samples) with one seed."""

    def __init__(self, reducer: dict, clusterer: dict, seed: int = 0):
        self.reducer = {k: typed(v) for k, v in reducer.items()}
        self.clusterer = {k: typed(v) for k, v in clusterer.items()}
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> "FittedPipeline":
        vectors = np.asarray(vectors, dtype=np.float32)
        # As in the study: above the reducer's bound it fits the same seeded sample.
        self.reducer_, self.reduced_ = fit_reduce(self.reducer, vectors, self.seed)
        self.cluster_model_ = ClusterModel(self.clusterer, seed=self.seed).fit(self.reduced_)
        self.labels_ = self.cluster_model_.labels_
        self.n_features_in_ = vectors.shape[1]
        return self

    def predict(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster ids (−1 = noise) and confidences in [0, 1] for new vectors."""
        if not hasattr(self, "reducer_"):
            raise RuntimeError("FittedPipeline is not fitted; call fit first.")
        reduced = np.asarray(self.reducer_.transform(np.asarray(vectors, dtype=np.float32)), dtype=np.float32)
        return self.cluster_model_.predict(reduced)
