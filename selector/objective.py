"""The label-free objective, and — kept apart — the label-based validation that is only reported.

The objective is the silhouette score measured in one fixed evaluation space per (data set, encoder):
the seed paper's UMAP (50 dims, ``n_neighbors`` 30, ``min_dist`` 0), fitted once and shared by every
trial, so pipelines that reduce differently are compared on the same ground.

Noise (label −1) is not a free way to a high score: the silhouette is taken over the clustered points
and multiplied by the fraction of points clustered. Degenerate results get the worst score, −1, and a
reason: fewer than two clusters, everything noise, or nearly one cluster per point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from selector.clustering import NOISE
from selector.sampling import stratified_sample

EVAL_SPACE = {"name": "umap", "scaling": "none", "n_components": 50, "n_neighbors": 30, "min_dist": 0.0,
              "metric": "euclidean"}
WORST = -1.0
SAMPLE_BOUND = 10_000  # above this many clustered points the silhouette is estimated on a sample
MAX_CLUSTER_FRACTION = 0.5  # more clusters than this fraction of points is "one cluster per point"


@dataclass
class Score:
    """The objective's value and what it was made of."""

    value: float
    n_clusters: int
    noise_fraction: float
    silhouette_clustered: float | None = None
    degenerate: str | None = None
    sampled: bool = False
    sample_size: int = 0
    extra: dict = field(default_factory=dict)


def silhouette_objective(space: np.ndarray, labels: np.ndarray, seed: int = 0,
                         sample_bound: int = SAMPLE_BOUND) -> Score:
    """Silhouette of the clustered points in ``space`` × the clustered fraction; −1 when degenerate."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    n = len(labels)
    clustered = labels != NOISE
    noise_fraction = float(1.0 - clustered.mean()) if n else 1.0
    n_clusters = int(len(np.unique(labels[clustered])))
    if not clustered.any():
        return Score(WORST, 0, noise_fraction, degenerate="all_noise")
    if n_clusters < 2:
        return Score(WORST, n_clusters, noise_fraction, degenerate="one_cluster")
    if n_clusters > MAX_CLUSTER_FRACTION * clustered.sum():
        return Score(WORST, n_clusters, noise_fraction, degenerate="one_cluster_per_point")
    points, kept = space[clustered], labels[clustered]
    sampled = len(kept) > sample_bound
    if sampled:
        index = stratified_sample(kept, sample_bound, seed)
        points, kept = points[index], kept[index]
    silhouette = float(silhouette_score(points, kept))
    return Score(silhouette * (1.0 - noise_fraction), n_clusters, noise_fraction,
                 silhouette_clustered=silhouette, sampled=sampled, sample_size=len(kept))


def validation_metrics(true_labels: np.ndarray | None, labels: np.ndarray) -> dict[str, float]:
    """AMI, ARI and NMI against the true labels — for reporting only, never for choosing.

    Noise points count as one more cluster, so a pipeline that throws half the data away as noise
    is judged on all of it.
    """
    if true_labels is None:
        return {}
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

    return {
        "ami": float(adjusted_mutual_info_score(true_labels, labels)),
        "ari": float(adjusted_rand_score(true_labels, labels)),
        "nmi": float(normalized_mutual_info_score(true_labels, labels)),
    }


# The seed paper's fixed pipeline: its UMAP (the evaluation space itself), then Ward agglomerative
# clustering with k = the true number of classes. It needs labels, so it is reported beside the
# label-free winner for reference and never competes with it.
PAPER_RECIPE = {"name": "agglomerative", "linkage": "ward", "mode": "k"}


def paper_recipe(space: np.ndarray, true_labels: np.ndarray | None, seed: int = 0) -> dict[str, float]:
    """AMI and silhouette of the paper's recipe on the evaluation space; empty without labels."""
    if true_labels is None:
        return {}
    from selector.clustering import ClusterModel

    k = int(len(np.unique(true_labels)))
    if not 2 <= k < len(true_labels):
        return {}
    labels = ClusterModel({**PAPER_RECIPE, "n_clusters": k}, seed=seed).fit(space).labels_
    return {"paper_recipe_ami": validation_metrics(true_labels, labels)["ami"],
            "paper_recipe_silhouette_umap": silhouette_objective(space, labels, seed=seed).value,
            "paper_recipe_k": k}
