"""Label-free objectives, registered by name, and — kept apart — the label-based validation that is
only reported.

Every objective scores a trial's labels in the study's one evaluation space (``EvalSpace``): the seed
paper's UMAP (50 dims, ``n_neighbors`` 30, ``min_dist`` 0) fitted once per (data set, encoder), and
the fuzzy nearest-neighbour graph that UMAP builds on the way. Pipelines that reduce differently are
so compared on the same ground.

Shared rules, so that no objective can be gamed by the clusterer:
- degenerate results (fewer than two clusters, everything noise, nearly one cluster per point) get
  the worst score, −1, and a reason;
- noise (label −1) is no free lunch: geometric scores are taken over the clustered points and
  multiplied by the fraction clustered; graph scores count each noise point as a cluster of its own,
  so its edges are cut.

``silhouette_umap`` — the seed paper's measure — is computed for every trial whatever the objective,
for reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from selector.stages.clustering import NOISE
from selector.names import Registry
from selector.stages.sampling import stratified_sample

# The evaluation space lives in its own module; its names are re-exported here, where callers meet them.
from selector.stages.evalspace import (EVAL_SPACE, FINE_NEIGHBOURS, EvalSpace, build_eval_space,  # noqa: F401
                                       eval_space_params)

logger = logging.getLogger(__name__)

WORST = -1.0
SAMPLE_BOUND = 10_000  # above this many clustered points geometric scores are estimated on a sample
MAX_CLUSTER_FRACTION = 0.5  # more clusters than this fraction of points is "one cluster per point"


@dataclass
class Score:
    """An objective's value and what it was made of."""

    value: float
    n_clusters: int
    noise_fraction: float
    parts: dict = field(default_factory=dict)
    degenerate: str | None = None
    sampled: bool = False
    sample_size: int = 0


def _shape(labels: np.ndarray) -> tuple[np.ndarray, int, float, str | None]:
    """Clustered mask, cluster count, noise fraction, and the reason the labels are degenerate."""
    labels = np.asarray(labels)
    clustered = labels != NOISE
    noise_fraction = float(1.0 - clustered.mean()) if len(labels) else 1.0
    n_clusters = int(len(np.unique(labels[clustered])))
    reason = None
    if not clustered.any():
        reason = "all_noise"
    elif n_clusters < 2:
        reason = "one_cluster"
    elif n_clusters > MAX_CLUSTER_FRACTION * clustered.sum():
        reason = "one_cluster_per_point"
    return clustered, n_clusters, noise_fraction, reason


def _clustered_sample(space: np.ndarray, labels: np.ndarray, clustered: np.ndarray, seed: int,
                      bound: int) -> tuple[np.ndarray, np.ndarray, bool]:
    points, kept = space[clustered], labels[clustered]
    if len(kept) <= bound:
        return points, kept, False
    index = stratified_sample(kept, bound, seed)
    return points[index], kept[index], True


def silhouette_objective(space: np.ndarray, labels: np.ndarray, seed: int = 0,
                         sample_bound: int | None = None) -> Score:
    """Silhouette of the clustered points in ``space`` × the clustered fraction; −1 when degenerate.
    Above ``sample_bound`` (default ``SAMPLE_BOUND``) clustered points it is taken on a stratified sample."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    clustered, n_clusters, noise_fraction, reason = _shape(labels)
    if reason:
        return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
    points, kept, sampled = _clustered_sample(space, labels, clustered, seed, sample_bound or SAMPLE_BOUND)
    silhouette = float(silhouette_score(points, kept))
    value = silhouette * (1.0 - noise_fraction)
    return Score(value, n_clusters, noise_fraction, parts={"silhouette_clustered": silhouette, "silhouette_umap": value},
                 sampled=sampled, sample_size=len(kept))


def _geometric(measure: Callable[[np.ndarray, np.ndarray], float], part: str):
    """An objective from a score of clustered points in the evaluation coordinates, × the clustered fraction."""
    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        labels = np.asarray(labels)
        clustered, n_clusters, noise_fraction, reason = _shape(labels)
        if reason:
            return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
        points, kept, sampled = _clustered_sample(space.coords, labels, clustered, seed, SAMPLE_BOUND)
        value = float(measure(points, kept))
        return Score(value * (1.0 - noise_fraction), n_clusters, noise_fraction, parts={part: value},
                     sampled=sampled, sample_size=len(kept))

    return score


def _macro_silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    """Mean over clusters of each cluster's mean silhouette: a small well-separated cluster counts as
    much as a large one."""
    from sklearn.metrics import silhouette_samples

    values = silhouette_samples(points, labels)
    return float(np.mean([values[labels == c].mean() for c in np.unique(labels)]))


def _log_calinski_harabasz(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import calinski_harabasz_score

    return float(np.log(max(calinski_harabasz_score(points, labels), 1e-12)))


def _dbcv(points: np.ndarray, labels: np.ndarray) -> float:
    from hdbscan.validity import validity_index

    return float(validity_index(points.astype(np.float64), labels))


def modularity(graph, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Newman's modularity of the partition ``labels`` on the weighted graph; each noise point is a
    cluster of its own, so a pipeline that discards points loses their edges."""
    labels = np.asarray(labels).copy()
    noise = labels == NOISE
    labels[noise] = labels.max(initial=0) + 1 + np.arange(int(noise.sum()))
    _, labels = np.unique(labels, return_inverse=True)
    edges = graph.tocoo()
    total = float(edges.data.sum())
    inside = float(edges.data[labels[edges.row] == labels[edges.col]].sum())
    degree = np.asarray(graph.sum(axis=1)).ravel()
    volume = np.bincount(labels, weights=degree) / total
    return inside / total - resolution * float((volume ** 2).sum())


# The share of a partition's cluster size that ``partition_neighbours`` reads it at.
PARTITION_SCALE = 0.5


def partition_neighbours(labels: np.ndarray, share: float = PARTITION_SCALE, floor: int | None = None) -> int:
    """The neighbour count a partition is read at by ``scale="partition"``: ``share`` (a half) of the size of a point's
    cluster (median over the clustered points), within [``floor`` (default ``FINE_NEIGHBOURS``), the space's 30]. A partition
    into classes of a dozen or two pictures is then read where they are apart, not joined in pairs; one
    into a few wide clusters at the space's own scale, so cutting them gains nothing it did not before."""
    labels = np.asarray(labels)
    kept = labels[labels != NOISE]
    _, inverse, counts = np.unique(kept, return_inverse=True, return_counts=True)
    size = float(np.median(counts[inverse]))
    return int(np.clip(round(share * size), FINE_NEIGHBOURS if floor is None else floor, EVAL_SPACE["n_neighbors"]))


# The fewest neighbours ``scale="partition_fine"`` reads a partition at: half of ten photos a class.
PARTITION_FLOOR = 5

# Which of the space's graphs a modularity reads: the space's own (30 neighbours), the fine one (10), or
# the one at the partition's own scale (``partition_neighbours``), down to 10 or to ``PARTITION_FLOOR``.
GRAPH_SCALES = {
    "space": lambda space, labels: space.params["n_neighbors"],
    "fine": lambda space, labels: FINE_NEIGHBOURS,
    "partition": lambda space, labels: partition_neighbours(labels),
    "partition_fine": lambda space, labels: partition_neighbours(labels, floor=PARTITION_FLOOR),
}


def graph_modularity(resolution: float = 1.0, scale: str = "space"):
    """An objective: the modularity (at ``resolution``, Reichardt–Bornholdt's γ) of a trial's labels on
    one of the evaluation space's fuzzy graphs (``scale``, a key of ``GRAPH_SCALES``); above UMAP's bound,
    of the labels of the graph's sampled points."""
    part = "modularity" if scale == "space" else f"modularity_{scale}"
    neighbours_for = GRAPH_SCALES[scale]

    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        labels = np.asarray(labels)
        clustered, n_clusters, noise_fraction, reason = _shape(labels)
        if reason:
            return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
        on_graph = space.on_graph(labels)
        neighbours = neighbours_for(space, on_graph)
        value = modularity(space.graph_at(neighbours), on_graph, resolution)
        parts = {part: value} if scale == "space" else {part: value, "graph_neighbours": neighbours}
        return Score(value, n_clusters, noise_fraction, parts=parts,
                     sampled=space.graph_points is not None, sample_size=len(on_graph))

    return score


def _modularity_silhouette(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """Modularity × the silhouette (negative silhouettes count as 0): the two fail in opposite directions.
    Modularity chops one large continuous cluster into pieces (the chance term it subtracts shrinks
    faster than the edges a cut through it lose); the silhouette merges classes that sit in far-apart
    groups. A chop lowers the silhouette (the pieces touch), a merge of groups lowers modularity."""
    return _modularity_times(space, labels, seed, _silhouette_in_coords, 1.0, floor=False)


def _silhouette_in_coords(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    return silhouette_objective(space.coords, labels, seed=seed)


def _modularity_times(space: EvalSpace, labels: np.ndarray, seed: int, other, weight: float,
                      floor: bool = True, scale: str = "space") -> Score:
    """Modularity (on the graph ``scale`` names) × ``other``'s value^``weight`` (a negative ``other``
    counts as 0; with ``floor`` a negative modularity too), with both scores' parts; degenerate labels
    score as modularity does."""
    graph = graph_modularity(1.0, scale)(space, labels, seed)
    if graph.degenerate:
        return graph
    part = other(space, labels, seed)
    value = (max(graph.value, 0.0) if floor else graph.value) * max(part.value, 0.0) ** weight
    return Score(value, graph.n_clusters, graph.noise_fraction, parts={**graph.parts, **part.parts},
                 sampled=graph.sampled or part.sampled, sample_size=graph.sample_size)


def probe_score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """The information a linear probe in the embedding learns about the partition (``selector.stages.probe``),
    in nats above chance, × the clustered fraction; on a stratified sample above ``SAMPLE_BOUND``."""
    from selector.stages.probe import probe_information

    labels = np.asarray(labels)
    clustered, n_clusters, noise_fraction, reason = _shape(labels)
    if reason:
        return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
    features, kept, sampled = _clustered_sample(space.probe_features(seed), labels, clustered, seed, SAMPLE_BOUND)
    information, kappa = probe_information(features, kept, seed)
    return Score(information * (1.0 - noise_fraction), n_clusters, noise_fraction,
                 parts={"probe_information": information * (1.0 - noise_fraction), "probe_kappa": kappa},
                 sampled=sampled, sample_size=len(kept))


# How much the probe weighs against modularity in ``modularity_probe`` (an exponent; see its docstring).
PROBE_WEIGHT = 0.25


def _modularity_probe(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """Modularity × (probe information)^PROBE_WEIGHT (negative parts count as 0). Modularity finds the
    classes under far-apart groups of classes but chops one large continuous cluster; the probe's
    information grows with every learnable split and falls for splits the embedding does not carry, so
    it breaks modularity's ties towards the resolution the embedding supports. The exponent keeps
    modularity's voice on clean two-class data, where the probe alone over-splits."""
    return _modularity_times(space, labels, seed, probe_score, PROBE_WEIGHT)


# The silhouette's weight in ``modularity_silhouette_soft`` (an exponent; see its docstring).
SILHOUETTE_WEIGHT = 0.25


def _modularity_silhouette_soft(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """Modularity × silhouette^SILHOUETTE_WEIGHT (a negative silhouette counts as 0). The plain product
    (``modularity_silhouette``) lets the silhouette decide whenever classes sit in far-apart groups:
    real photos then collapse to the two groups. Under a fourth root the silhouette still vetoes chopping
    one continuous cluster into touching pieces — its value falls steeply there — but no longer outweighs
    modularity's gain for the classes under the groups."""
    return _modularity_times(space, labels, seed, _silhouette_in_coords, SILHOUETTE_WEIGHT)


def embedding_silhouette(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """The silhouette of the clustered points in the embedding itself (``EvalSpace.embedding_coords``:
    its principal components) × the clustered fraction."""
    score = silhouette_objective(space.embedding_coords(seed), labels, seed=seed)
    if score.degenerate:
        return score
    return Score(score.value, score.n_clusters, score.noise_fraction,
                 parts={"silhouette_embedding": score.value}, sampled=score.sampled, sample_size=score.sample_size)


def _fine_modularity_silhouette(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """Modularity on the 10-neighbour fuzzy graph × the embedding's silhouette^SILHOUETTE_WEIGHT.
    ``modularity_silhouette_soft`` reads both scores at UMAP's 30 neighbours, a scale that joins classes
    of a dozen photos two by two (27 people of 15 photos: k = 9–13 chosen). At 10 neighbours modularity
    sees them apart; the silhouette, read in the embedding rather than in a UMAP of either scale, holds
    back part of the chopping a 10-neighbour scale invites — not all: sets of few wide classes are split
    further than by ``modularity_silhouette_soft``, which is why this is not the default (docs/objective.md, "When it fails")."""
    return _modularity_times(space, labels, seed, embedding_silhouette, SILHOUETTE_WEIGHT, scale="fine")


def _scaled_modularity_silhouette(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """``modularity_silhouette_soft`` with modularity read at the partition's own scale
    (``partition_neighbours``). At the space's 30 neighbours, classes of a dozen pictures share their
    neighbourhoods in pairs and every score prefers the pairs; at 10 every set is read finely and wide
    classes are chopped. Reading each partition at half its own cluster size lets a partition into small
    classes show that they are apart, while a partition into mid-sized pieces of a wide class is read
    nearly as the soft product reads it, and the silhouette still vetoes the chop. The default."""
    return _modularity_times(space, labels, seed, _silhouette_in_coords, SILHOUETTE_WEIGHT, scale="partition")


def scaled_silhouette(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """The silhouette where a partition's clusters can be seen: in the UMAP coordinates, whose 30
    neighbours resolve clusters of 60 points or more, and in the embedding itself for smaller ones.
    The weighted geometric mean silhouette_umap^s × silhouette_embedding^(1 − s), with s the
    partition's neighbour count (``partition_neighbours`` down to ``PARTITION_FLOOR``) over the space's:
    1 for wide clusters (the UMAP silhouette alone), 1/6 for clusters of ten. Each is × the clustered
    fraction; a negative one counts as 0."""
    umap = silhouette_objective(space.coords, labels, seed=seed)
    if umap.degenerate:
        return umap
    share = partition_neighbours(space.on_graph(labels), floor=PARTITION_FLOOR) / space.params["n_neighbors"]
    if share >= 1.0:
        return umap
    embedding = embedding_silhouette(space, labels, seed)
    value = float(max(umap.value, 0.0) ** share * max(embedding.value, 0.0) ** (1.0 - share))
    return Score(value, umap.n_clusters, umap.noise_fraction,
                 parts={**umap.parts, **embedding.parts, "silhouette_scaled": value},
                 sampled=umap.sampled or embedding.sampled, sample_size=umap.sample_size)


def _scaled_modularity_silhouettes(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """Modularity at the partition's own scale, read down to ``PARTITION_FLOOR`` neighbours, ×
    ``scaled_silhouette``^SILHOUETTE_WEIGHT. ``scaled_modularity_silhouette`` reads a partition of ten
    photos a class at 10 neighbours, where each photo's neighbours reach into the next class, and judges
    it by the silhouette in a 30-neighbour UMAP, which draws such classes together: people with ten
    photos each were answered with groups of people. Partitions of clusters of 60 points or more are
    scored exactly as there."""
    return _modularity_times(space, labels, seed, scaled_silhouette, SILHOUETTE_WEIGHT, scale="partition_fine")


@dataclass(frozen=True)
class ObjectiveSpec:
    """One label-free objective: how it scores a trial's labels in the study's evaluation space."""

    name: str
    score: Callable[[EvalSpace, np.ndarray, int], Score]  # (space, labels, seed) -> Score
    description: str


OBJECTIVES: Registry[ObjectiveSpec] = Registry("objective")
register_objective = OBJECTIVES.add


for _spec in (
    ObjectiveSpec("silhouette", lambda space, labels, seed: silhouette_objective(space.coords, labels, seed),
                  "the seed paper's silhouette in the UMAP evaluation space × clustered fraction"),
    ObjectiveSpec("silhouette_macro", _geometric(_macro_silhouette, "silhouette_macro"),
                  "mean of per-cluster mean silhouettes × clustered fraction"),
    ObjectiveSpec("calinski_harabasz", _geometric(_log_calinski_harabasz, "log_calinski_harabasz"),
                  "log of the Calinski-Harabasz ratio × clustered fraction"),
    ObjectiveSpec("dbcv", _geometric(_dbcv, "dbcv"),
                  "density-based cluster validity (hdbscan's validity_index) × clustered fraction"),
    ObjectiveSpec("modularity", graph_modularity(1.0),
                  "modularity of the partition on the evaluation space's fuzzy kNN graph"),
    ObjectiveSpec("modularity_silhouette", _modularity_silhouette,
                  "modularity on the fuzzy kNN graph × the silhouette in the UMAP coordinates"),
    ObjectiveSpec("modularity_silhouette_soft", _modularity_silhouette_soft,
                  "modularity on the fuzzy kNN graph × the silhouette^0.25 in the UMAP coordinates"),
    ObjectiveSpec("fine_modularity_silhouette", _fine_modularity_silhouette,
                  "modularity on the 10-neighbour fuzzy graph × the silhouette^0.25 in the embedding itself"),
    ObjectiveSpec("scaled_modularity_silhouette", _scaled_modularity_silhouette,
                  "modularity on the fuzzy graph at half the partition's cluster size (10 to 30 neighbours) "
                  "× the silhouette^0.25 in the UMAP coordinates"),
    ObjectiveSpec("scaled_modularity_silhouettes", _scaled_modularity_silhouettes,
                  "modularity on the fuzzy graph at half the partition's cluster size (5 to 30 neighbours) "
                  "× the silhouette^0.25, read in the UMAP coordinates for wide clusters and increasingly in the "
                  "embedding for smaller ones"),
    ObjectiveSpec("probe_information", probe_score,
                  "information (nats) a linear probe in the embedding learns about the partition, above chance"),
    ObjectiveSpec("modularity_probe", _modularity_probe,
                  "modularity on the fuzzy kNN graph × (probe information)^0.25"),
):
    register_objective(_spec)

# The selection suite's choice (docs/objective.md): on its development halves it ties with
# ``scaled_modularity_silhouette`` on every set but those of ten or so photos a class, which it answers
# and that one joins into groups.
DEFAULT_OBJECTIVE = "scaled_modularity_silhouettes"
# What studies, runs and model versions made before objectives had names were chosen by.
LEGACY_OBJECTIVE = "silhouette"


def get_objective(name: str) -> ObjectiveSpec:
    """The registered objective ``name``; an unknown or empty name lists the valid ones."""
    return OBJECTIVES.find(name)


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


def paper_recipe(space: EvalSpace, true_labels: np.ndarray | None, objective: ObjectiveSpec,
                 seed: int = 0) -> dict[str, float]:
    """AMI, silhouette and objective value of the paper's recipe on the evaluation space; empty without labels."""
    if true_labels is None:
        return {}
    from selector.stages.clustering import ClusterModel

    k = int(len(np.unique(true_labels)))
    if not 2 <= k < len(true_labels):
        return {}
    labels = ClusterModel({**PAPER_RECIPE, "n_clusters": k}, seed=seed).fit(space.coords).labels_
    return {"paper_recipe_ami": validation_metrics(true_labels, labels)["ami"],
            "paper_recipe_silhouette_umap": silhouette_objective(space.coords, labels, seed=seed).value,
            "paper_recipe_objective_value": objective.score(space, labels, seed).value,
            "paper_recipe_k": k}


def cross_space_values(spaces: dict[str, EvalSpace], partitions: dict[str, np.ndarray], objective: ObjectiveSpec,
                       seed: int = 0) -> dict[str, float]:
    """How well each study's chosen clustering (``partitions``, by encoder) holds in every study's
    evaluation space (``spaces``, by encoder, over the same points): the mean of ``objective`` over the
    spaces. ``select`` picks the highest: a clustering that only one representation supports — raw
    pixels' colours, say, which score high in their own space and low in an encoder's — loses to one
    that several support (docs/objective.md, "Picking the encoder")."""
    score = objective.score
    return {name: float(np.mean([score(space, labels, seed).value for space in spaces.values()]))
            for name, labels in partitions.items()}
