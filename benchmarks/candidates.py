"""Label-free criteria compared by ``bench_selection`` beside the registered objectives.

The objective registry takes objectives from anywhere; these are registered by the benchmark only, so
a criterion becomes a library objective (``selector/stages/objective.py``) after the evidence, not before.

- ``subsplit``: Stadion's idea (stability difference: between-cluster minus within-cluster) with the
  silhouette as its measure. The partition's silhouette, minus how well each cluster itself splits
  in two (its best split along its first principal axis, scored by the silhouette, weighted by the
  cluster's share). A merge of two classes leaves a cluster that splits well: penalised. A chop of
  one class gives touching pieces: a low silhouette.
- ``stability``: k-means with the partition's k reproduces it on seeded 80 % samples of the evaluation
  coordinates (mean ARI): arbitrary chops of one continuous cluster move from sample to sample.
- ``probe_kappa``: the library's linear probe (``selector.stages.probe``) scored by Cohen's κ instead of
  information.
- ``scaled…``: variants of the library's ``scaled_modularity_silhouette`` (modularity read on the fuzzy
  graph at half the partition's cluster size, × the UMAP silhouette^0.25): read at the whole cluster
  size (``scaled``), × the embedding's silhouette instead (``scaled_embedding``), modularity alone
  (``scaled_modularity``).
- ``ceiling_p``: the default with its modularity divided by its ceiling (1 − Σ cluster volume²)^p, what a
  perfect partition with those cluster sizes would score; ``resolution_0.8``: the default's modularity at
  resolution 0.8. Both lean towards fewer clusters, for sets of few wide classes that the default chops.
- ``fine_silhouette_w``: the default with the silhouette's exponent 0.25 + w × (1 − neighbours / 30):
  heavier where a partition is read finely.
- products of these with modularity and the probe's information, whose biases run the other way
  (towards more, smaller clusters); ``bench_selection --phase grid`` compares products of the factors
  more widely, from the stored scores.
"""

from __future__ import annotations

import numpy as np

from selector.stages.objective import (SAMPLE_BOUND, WORST, EvalSpace, Score, _clustered_sample, _shape, graph_modularity,
                                silhouette_objective)

MIN_SPLIT = 4  # a 2-way split needs two points a side


def _best_axis_split(points: np.ndarray) -> np.ndarray:
    """The best two-way split of ``points`` along their first principal axis (exact 1-D 2-means)."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    t = centred @ vt[0]
    order = np.argsort(t)
    s = t[order]
    n = len(s)
    prefix, prefix_sq = np.cumsum(s), np.cumsum(s * s)
    left = np.arange(1, n)  # points left of each cut
    sse_left = prefix_sq[:-1] - prefix[:-1] ** 2 / left
    right = n - left
    sse_right = (prefix_sq[-1] - prefix_sq[:-1]) - (prefix[-1] - prefix[:-1]) ** 2 / right
    sse = sse_left + sse_right
    sse[(left < 2) | (right < 2)] = np.inf
    cut = int(np.argmin(sse)) + 1
    split = np.zeros(n, dtype=np.int64)
    split[order[cut:]] = 1
    return split


def _two_group_silhouette(points: np.ndarray, split: np.ndarray) -> float:
    """The mean silhouette of a two-way split (what ``silhouette_score`` gives), without its overhead."""
    from scipy.spatial.distance import cdist

    distances = cdist(points, points)
    sizes = np.bincount(split, minlength=2).astype(np.float64)
    to_group = np.stack([distances[:, split == g].sum(axis=1) for g in (0, 1)], axis=1)
    own = to_group[np.arange(len(points)), split] / np.maximum(sizes[split] - 1, 1)
    other = to_group[np.arange(len(points)), 1 - split] / sizes[1 - split]
    values = (other - own) / np.maximum(np.maximum(own, other), 1e-12)
    values[sizes[split] == 1] = 0.0  # a point alone in its group scores 0, as scikit-learn's does
    return float(values.mean())


def subsplit_penalty(points: np.ndarray, labels: np.ndarray) -> float:
    """Share-weighted mean over clusters of the silhouette of each cluster's best axis split."""
    total = 0.0
    for cluster in np.unique(labels):
        members = points[labels == cluster]
        if len(members) < MIN_SPLIT:
            continue
        total += len(members) * _two_group_silhouette(members, _best_axis_split(members))
    return total / len(labels)


def subsplit(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    labels = np.asarray(labels)
    clustered, n_clusters, noise_fraction, reason = _shape(labels)
    if reason:
        return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
    points, kept, sampled = _clustered_sample(space.coords, labels, clustered, seed, SAMPLE_BOUND)
    from sklearn.metrics import silhouette_score

    between = float(silhouette_score(points, kept))
    within = subsplit_penalty(points, kept)
    value = (between - within) * (1.0 - noise_fraction)
    return Score(value, n_clusters, noise_fraction, parts={"subsplit_between": between, "subsplit_within": within},
                 sampled=sampled, sample_size=len(kept))


def _library_probe(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    from selector.stages.objective import probe_score

    return probe_score(space, labels, seed)


def _memo(score):
    """``score`` computed once per (space, labels, seed): the products below reuse their factors'
    values instead of recomputing a probe or a split per product."""
    import hashlib

    memory: dict = {}

    def cached(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        key = (id(space), hashlib.sha1(np.ascontiguousarray(labels).tobytes()).hexdigest(), seed)
        if key not in memory:
            if len(memory) > 64:
                memory.clear()
            memory[key] = score(space, labels, seed)
        return memory[key]

    return cached


subsplit = _memo(subsplit)
probe_information = _memo(_library_probe)


def probe_kappa(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """The probe's Cohen's κ (chance-corrected accuracy) × the clustered fraction."""
    score = probe_information(space, labels, seed)
    if score.degenerate:
        return score
    return Score(score.parts["probe_kappa"] * (1.0 - score.noise_fraction), score.n_clusters, score.noise_fraction,
                 parts=score.parts, sampled=score.sampled, sample_size=score.sample_size)


def _product(first, second, power: float = 1.0):
    """``first`` × max(``second``, 0) ** ``power``; degenerate when either is."""
    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        a = first(space, labels, seed)
        if a.degenerate:
            return a
        b = second(space, labels, seed)
        if b.degenerate:
            return b
        return Score(a.value * max(b.value, 0.0) ** power, a.n_clusters, a.noise_fraction,
                     parts={**a.parts, **b.parts}, sampled=a.sampled or b.sampled, sample_size=a.sample_size)

    return score


@_memo
def _silhouette(space, labels, seed):
    return silhouette_objective(space.coords, labels, seed)


def register() -> None:
    from selector.stages.objective import OBJECTIVES, ObjectiveSpec, register_objective

    register_stability()
    register_scaled()
    register_ceiling()
    register_fine_silhouette()
    modularity = _memo(graph_modularity(1.0))
    variants = [
        ObjectiveSpec("modularity@0.5", graph_modularity(0.5), "modularity at resolution 0.5"),
        ObjectiveSpec("subsplit", subsplit, "silhouette minus the silhouette of each cluster's best split"),
        ObjectiveSpec("probe_kappa", probe_kappa, "Cohen's κ of the linear probe (selector.stages.probe)"),
        ObjectiveSpec("modularity×√silhouette", _product(modularity, _silhouette, 0.5), "modularity × √silhouette"),
        ObjectiveSpec("modularity×subsplit", _product(modularity, subsplit), "modularity × subsplit"),
        ObjectiveSpec("modularity×√probe", _product(modularity, probe_information, 0.5),
                      "modularity × (probe information)^0.5"),
        ObjectiveSpec("modularity×√probe×stability",
                      _product(_product(modularity, probe_information, 0.5), kmeans_stability),
                      "modularity × (probe information)^0.5 × k-means stability"),
    ]
    for spec in variants:
        if spec.name not in OBJECTIVES:
            register_objective(spec)


STABILITY_ROUNDS = 3
STABILITY_SHARE = 0.8


def kmeans_stability(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    """How reproducibly k-means with the partition's k finds the partition on subsamples of the
    evaluation coordinates: the mean ARI, over rounds, between the labels and a k-means of a seeded 80 %
    sample. Arbitrary chops of one continuous cluster move from sample to sample; real clusters do not."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    labels = np.asarray(labels)
    clustered, n_clusters, noise_fraction, reason = _shape(labels)
    if reason:
        return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
    points, kept, sampled = _clustered_sample(space.coords, labels, clustered, seed, SAMPLE_BOUND)
    rng = np.random.default_rng(seed)
    agreement = []
    for round_ in range(STABILITY_ROUNDS):
        subset = rng.choice(len(kept), size=max(n_clusters + 1, int(STABILITY_SHARE * len(kept))), replace=False)
        found = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed + round_).fit_predict(points[subset])
        agreement.append(adjusted_rand_score(kept[subset], found))
    value = float(np.mean(agreement))
    return Score(value * (1.0 - noise_fraction), n_clusters, noise_fraction, parts={"kmeans_stability": value},
                 sampled=sampled, sample_size=len(kept))


kmeans_stability = _memo(kmeans_stability)


def register_stability() -> None:
    """The stability criteria and their products (kept apart: each costs k-means fits per trial)."""
    from selector.stages.objective import OBJECTIVES, ObjectiveSpec, register_objective

    modularity = _memo(graph_modularity(1.0))
    for spec in (ObjectiveSpec("stability", kmeans_stability, "k-means reproduces the partition on 80 % samples"),
                 ObjectiveSpec("modularity×stability", _product(modularity, kmeans_stability),
                               "modularity × k-means stability"),
                 ObjectiveSpec("probe_information×stability", _product(probe_information, kmeans_stability),
                               "probe information × k-means stability"),
                 ObjectiveSpec("probe_information×√silhouette", _product(probe_information, _silhouette, 0.5),
                               "probe information × √silhouette")):
        if spec.name not in OBJECTIVES:
            register_objective(spec)


def scaled_modularity():
    """Modularity on the graph at the partition's whole cluster size (the library reads at half of it)."""
    from selector.stages.objective import GRAPH_SCALES, partition_neighbours

    GRAPH_SCALES.setdefault("partition_whole", lambda space, labels: partition_neighbours(labels, 1.0))
    return graph_modularity(1.0, "partition_whole")


def floored_modularity(floor: int):
    """Modularity at half the partition's cluster size, read down to ``floor`` neighbours (the library's
    ``partition`` scale: 10; its ``partition_fine``: ``PARTITION_FLOOR``, 5)."""
    from selector.stages.objective import GRAPH_SCALES, PARTITION_FLOOR, partition_neighbours

    if floor == PARTITION_FLOOR:
        return graph_modularity(1.0, "partition_fine")
    GRAPH_SCALES.setdefault(f"partition_floor{floor}", lambda space, labels: partition_neighbours(labels, floor=floor))
    return graph_modularity(1.0, f"partition_floor{floor}")


@_memo
def _both_silhouettes(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
    from selector.stages.objective import embedding_silhouette

    umap = _silhouette(space, labels, seed)
    if umap.degenerate:
        return umap
    value = float(np.sqrt(max(umap.value, 0.0) * max(embedding_silhouette(space, labels, seed).value, 0.0)))
    return Score(value, umap.n_clusters, umap.noise_fraction)


def _fading_silhouette(modularity_fn):
    """Modularity × the UMAP silhouette with a weight that fades with the partition's neighbour count."""
    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        first = modularity_fn(space, labels, seed)
        if first.degenerate:
            return first
        weight = 0.25 * first.parts["graph_neighbours"] / space.params["n_neighbors"]
        return Score(max(first.value, 0.0) * max(_silhouette(space, labels, seed).value, 0.0) ** weight,
                     first.n_clusters, first.noise_fraction, parts=first.parts)

    return score


def _floor_product(first, second, power):
    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        a = first(space, labels, seed)
        if a.degenerate:
            return a
        b = second(space, labels, seed)
        return Score(max(a.value, 0.0) * max(b.value, 0.0) ** power, a.n_clusters, a.noise_fraction,
                     parts={**a.parts, **b.parts})

    return score


def register_scaled() -> None:
    from selector.stages.objective import OBJECTIVES, ObjectiveSpec, embedding_silhouette, register_objective

    for spec in (ObjectiveSpec("scaled", _floor_product(scaled_modularity(), _silhouette, 0.25),
                               "modularity at the partition's scale × silhouette^0.25 (UMAP)"),
                 ObjectiveSpec("scaled_embedding", _floor_product(scaled_modularity(), _memo(embedding_silhouette), 0.25),
                               "modularity at the partition's scale × silhouette^0.25 (embedding)"),
                 ObjectiveSpec("scaled_modularity", scaled_modularity(), "modularity at the partition's scale"),
                 ObjectiveSpec("scaled_floor5", _floor_product(floored_modularity(5), _silhouette, 0.25),
                               "scaled_modularity_silhouette with partitions read down to 5 neighbours, not 10"),
                 ObjectiveSpec("scaled_floor3", _floor_product(floored_modularity(3), _silhouette, 0.25),
                               "scaled_modularity_silhouette with partitions read down to 3 neighbours"),
                 ObjectiveSpec("floor5_embedding", _floor_product(floored_modularity(5), _memo(embedding_silhouette), 0.25),
                               "modularity down to 5 neighbours × the embedding's silhouette^0.25"),
                 ObjectiveSpec("floor5_both", _floor_product(floored_modularity(5), _both_silhouettes, 0.25),
                               "modularity down to 5 neighbours × √(UMAP silhouette × embedding silhouette)^0.25"),
                 ObjectiveSpec("floor5_fading", _fading_silhouette(floored_modularity(5)),
                               "modularity down to 5 neighbours × the UMAP silhouette^(0.25 × neighbours / 30)"),
                 ObjectiveSpec("floor5_modularity", floored_modularity(5), "modularity down to 5 neighbours alone")):
        if spec.name not in OBJECTIVES:
            register_objective(spec)


def _partition_graph_terms(space: EvalSpace, labels: np.ndarray) -> tuple[float, float, int]:
    """The two terms of the default's modularity (read at the partition's own scale, down to
    ``PARTITION_FLOOR``): the share of edge weight inside clusters and Σ of the clusters' squared
    volume shares (``modularity`` at resolutions 0 and 1), and the neighbour count."""
    from selector.stages.objective import PARTITION_FLOOR, modularity, partition_neighbours

    on_graph = space.on_graph(labels)
    neighbours = partition_neighbours(on_graph, floor=PARTITION_FLOOR)
    graph = space.graph_at(neighbours)
    inside = modularity(graph, on_graph, 0.0)
    return inside, inside - modularity(graph, on_graph, 1.0), neighbours


def ceiling_corrected(power: float = 1.0, resolution: float = 1.0):
    """The default objective with its modularity (inside − r·Σvolume²) divided by its ceiling
    (1 − Σvolume²)^``power``: Newman's modularity of a perfect partition into k equal clusters is
    1 − 1/k, so cutting one clean class in two gains what its lost edges cost whenever those are few;
    the division judges each partition against what its own cluster sizes allow (power 1: a
    chance-corrected share of edges inside, like Cohen's κ)."""
    from selector.stages.objective import SILHOUETTE_WEIGHT, scaled_silhouette

    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        labels = np.asarray(labels)
        _, n_clusters, noise_fraction, reason = _shape(labels)
        if reason:
            return Score(WORST, n_clusters, noise_fraction, degenerate=reason)
        inside, squares, neighbours = _partition_graph_terms(space, labels)
        ceiling = max(1.0 - squares, 1e-12)
        corrected = (inside - resolution * squares) / ceiling ** power
        other = scaled_silhouette(space, labels, seed)
        value = max(corrected, 0.0) * max(other.value, 0.0) ** SILHOUETTE_WEIGHT
        return Score(value, n_clusters, noise_fraction,
                     parts={**other.parts, "modularity_corrected": corrected, "graph_neighbours": neighbours})

    return score


def register_ceiling() -> None:
    from selector.stages.objective import OBJECTIVES, ObjectiveSpec, register_objective

    specs = [ObjectiveSpec(f"ceiling_{power}", ceiling_corrected(power),
                           f"the default with its modularity ÷ (1 − Σ volume²)^{power}")
             for power in (1.0, 0.5, 0.25, 0.1)]
    specs.append(ObjectiveSpec("resolution_0.8", ceiling_corrected(0.0, 0.8),
                               "the default with modularity at resolution 0.8"))
    for spec in specs:
        if spec.name not in OBJECTIVES:
            register_objective(spec)


def weighted_fine_silhouette(extra: float):
    """The default with the silhouette's weight growing as the partition is read more finely: 0.25 +
    ``extra`` × (1 − s), s = the partition's neighbour count / 30 (the default: ``extra`` 0). Reading a
    partition of small clusters at few neighbours raises its modularity whether the clusters are
    classes or chops of one class; the idea tried: let the silhouette, mostly the embedding's there, weigh more."""
    from selector.stages.objective import SILHOUETTE_WEIGHT, graph_modularity, scaled_silhouette

    modularity = graph_modularity(1.0, "partition_fine")

    def score(space: EvalSpace, labels: np.ndarray, seed: int) -> Score:
        first = modularity(space, labels, seed)
        if first.degenerate:
            return first
        share = min(first.parts["graph_neighbours"] / space.params["n_neighbors"], 1.0)
        other = scaled_silhouette(space, labels, seed)
        weight = SILHOUETTE_WEIGHT + extra * (1.0 - share)
        return Score(max(first.value, 0.0) * max(other.value, 0.0) ** weight, first.n_clusters, first.noise_fraction,
                     parts={**first.parts, **other.parts})

    return score


def register_fine_silhouette() -> None:
    from selector.stages.objective import OBJECTIVES, ObjectiveSpec, register_objective

    for extra in (0.5, 1.0):
        spec = ObjectiveSpec(f"fine_silhouette_{extra}", weighted_fine_silhouette(extra),
                             f"the default, silhouette weight 0.25 + {extra} × (1 − neighbours / 30)")
        if spec.name not in OBJECTIVES:
            register_objective(spec)
