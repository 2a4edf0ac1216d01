"""``AutoCluster``: selector's label-free search as a scikit-learn clusterer.

    from selector import AutoCluster
    labels = AutoCluster(n_trials=30).fit_predict(X)      # vectors; or images with encoder=…

``fit`` runs one study (``selector.search``) on ``X`` and keeps the chosen pipeline refitted on every
point; ``predict`` places new points with it. Untracked by default — an estimator inside a
scikit-learn pipeline or a grid search should not open MLflow runs; ``tracking=True`` logs the study.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from selector.stages.objective import DEFAULT_OBJECTIVE
from selector.study.request import MIN_TUNE_POINTS


class AutoCluster(ClusterMixin, BaseEstimator):
    """Find the best reduce→cluster pipeline for ``X`` without labels, and fit it.

    Parameters
    ----------
    n_trials : int, default=30
        Pipelines the Optuna study tries.
    encoder : str, default="none"
        ``"none"``: ``X`` holds vectors (points × features). An encoder name (``"efficientnet_lite0"``,
        ``"raw"``, any timm model): ``X`` holds images — a list of paths, PIL images or arrays, or an
        N×H×W[×3] array — embedded first.
    objective : str
        The label-free objective maximised (``selector.stages.objective.OBJECTIVES``).
    clusterers : str, default="all"
        ``"all"`` or a comma list of the registered clusterers.
    seed : int, default=0
        Seeds the sampler and every stage: the same ``X`` gives the same clustering.
    workers : int, default=1
        Processes on this machine (0 = its cores). One keeps trials in one order, hence reproducible.
    timeout : float, default=0.0
        Seconds for the study (0 = none).
    tracking : bool, default=False
        Log the study in MLflow as ``selector.search`` does.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        The chosen clustering (−1 = noise).
    confidence_ : ndarray of shape (n_samples,)
        Each point's confidence in [0, 1].
    best_params_ : dict
        The chosen trial's pipeline parameters.
    best_value_ : float
        Its objective value.
    n_clusters_ : int
    pipeline_ : ClusterPipeline
        The chosen pipeline refitted on ``X``.
    study_ : optuna.Study
    n_features_in_ : int
        For vectors.
    """

    def __init__(self, n_trials: int = 30, encoder: str = "none", objective: str = DEFAULT_OBJECTIVE,
                 clusterers: str = "all", seed: int = 0, workers: int = 1, timeout: float = 0.0,
                 tracking: bool = False):
        self.n_trials = n_trials
        self.encoder = encoder
        self.objective = objective
        self.clusterers = clusterers
        self.seed = seed
        self.workers = workers
        self.timeout = timeout
        self.tracking = tracking

    def fit(self, X, y=None):
        """Run the label-free search on ``X`` (``y`` is ignored: labels never choose)."""
        from selector.api import search

        data = self._vectors(X, reset=True) if self.encoder == "none" else X
        result = search(data, encoder=self.encoder, n_trials=self.n_trials, objective=self.objective,
                        seed=self.seed, workers=self.workers, tracking=self.tracking, clusterers=self.clusterers,
                        timeout=self.timeout, show=False)
        if self.encoder != "none" and len(result.ids_) != _length(X):
            raise ValueError(f"only {len(result.ids_)} of the {_length(X)} images could be read; fit on readable "
                             "images (AutoCluster gives every input a label).")
        self.labels_ = result.labels_
        self.confidence_ = result.confidence_
        self.best_params_ = result.best_params_
        self.best_value_ = result.best_value_
        self.n_clusters_ = result.n_clusters_
        self.pipeline_ = result.pipeline_
        self.study_ = result.study_
        self.run_id_ = result.run_id_
        return self

    def predict(self, X) -> np.ndarray:
        """The cluster of each new point (−1 = noise), placed by the chosen pipeline."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(self._new_vectors(X))

    def predict_confidence(self, X) -> np.ndarray:
        """Each new point's confidence in its cluster, in [0, 1]."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.assign(self._new_vectors(X))[1]

    def _vectors(self, X, reset: bool) -> np.ndarray:
        return validate_data(self, X, reset=reset, dtype=np.float32, ensure_min_samples=MIN_TUNE_POINTS if reset else 1)

    def _new_vectors(self, X) -> np.ndarray:
        """New points as the pipeline reads them: vectors checked, or images embedded by ``encoder``."""
        if self.encoder == "none":
            return self._vectors(X, reset=False)
        from selector.api import embed_new

        embedded = embed_new(X, self.encoder)
        if len(embedded.vectors) != _length(X):
            raise ValueError(f"only {len(embedded.vectors)} of the {_length(X)} images could be read.")
        return embedded.vectors

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.workers != 1
        tags.input_tags.two_d_array = self.encoder == "none"
        return tags


def _length(X) -> int:
    try:
        return len(X)
    except TypeError:
        return -1
