import numpy as np
import pytest
from sklearn.datasets import make_blobs

from selector.stages.objective import silhouette_objective, stratified_sample, validation_metrics


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=200, centers=4, n_features=3, cluster_std=0.5, random_state=0)


def test_good_clustering_scores_high(blobs):
    X, y = blobs
    score = silhouette_objective(X, y)
    assert score.value > 0.6 and score.n_clusters == 4 and score.noise_fraction == 0 and score.degenerate is None


def test_noise_is_not_a_free_way_to_a_high_score(blobs):
    X, y = blobs
    full = silhouette_objective(X, y)
    labels = y.copy()
    labels[np.random.default_rng(0).random(len(y)) < 0.5] = -1  # throw half away as noise
    half = silhouette_objective(X, labels)
    assert half.noise_fraction == pytest.approx((labels == -1).mean())
    assert half.value == pytest.approx(half.parts["silhouette_clustered"] * (1 - half.noise_fraction))
    assert half.value < full.value


@pytest.mark.parametrize("labels, reason", [
    (np.full(200, -1), "all_noise"),
    (np.zeros(200, int), "one_cluster"),
    (np.r_[np.zeros(100, int), np.full(100, -1)], "one_cluster"),
    (np.arange(200), "one_cluster_per_point"),
])
def test_degenerate_results_get_the_worst_score_and_a_reason(blobs, labels, reason):
    score = silhouette_objective(blobs[0], labels)
    assert score.value == -1.0 and score.degenerate == reason


def test_sample_keeps_every_cluster_even_tiny_ones():
    labels = np.r_[np.zeros(5000, int), np.ones(3000, int), np.full(2, 2), [3]]
    index = stratified_sample(labels, 500, seed=0)
    assert set(labels[index]) == {0, 1, 2, 3}
    assert (labels[index] == 2).sum() == 2 and 450 <= len(index) <= 520
    np.testing.assert_array_equal(index, stratified_sample(labels, 500, seed=0))


def test_large_sets_are_sampled_and_say_so(blobs):
    X, y = blobs
    exact = silhouette_objective(X, y)
    sampled = silhouette_objective(X, y, sample_bound=100)
    assert sampled.sampled and not exact.sampled and sampled.sample_size <= 110
    assert sampled.value == pytest.approx(exact.value, abs=0.05)


def test_validation_needs_labels_and_never_feeds_the_objective(blobs):
    X, y = blobs
    assert validation_metrics(None, y) == {}
    metrics = validation_metrics(y, y)
    assert metrics == {"ami": 1.0, "ari": 1.0, "nmi": 1.0}


# --------------------------------------------------------------------------- the objective registry
from selector.stages.objective import (EvalSpace, OBJECTIVES, build_eval_space, eval_space_params,  # noqa: E402
                                get_objective, modularity)
from selector.stages.reduction import ReductionCache  # noqa: E402


def two_groups_of_five(seed=0, spread=1.0):
    """Ten tight classes in two far-apart groups of five: the case where the silhouette picks k = 2."""
    rng = np.random.default_rng(seed)
    groups = np.array([[0.0] * 8, [40.0] * 8])
    centres = np.concatenate([g + rng.normal(0, 3, size=(5, 8)) for g in groups])
    y = np.repeat(np.arange(10), 60)
    return centres[y] + rng.normal(0, spread, size=(len(y), 8)), y


@pytest.fixture(scope="module")
def grouped_space():
    """The study's real evaluation space (UMAP and its graph) of the grouped classes."""
    X, y = two_groups_of_five()
    return build_eval_space(X.astype(np.float32), ReductionCache(None, "grouped"), seed=0), y


@pytest.fixture(scope="module")
def grouped_raw():
    """The grouped classes scored in their own coordinates, with their fuzzy kNN graph: here the
    groups are far apart relative to the classes, as pretrained embeddings of digits are."""
    from umap.umap_ import fuzzy_simplicial_set

    X, y = two_groups_of_five()
    graph, _, _ = fuzzy_simplicial_set(X, 30, np.random.RandomState(0), "euclidean")
    return EvalSpace(coords=X, graph=graph.tocsr(), vectors=X.astype(np.float32)), y


@pytest.mark.parametrize("name", list(OBJECTIVES))
class TestObjectiveConformance:
    """Every registered objective, scored in a real evaluation space (UMAP coordinates and graph)."""

    def test_it_ranks_the_truth_above_shuffled_labels(self, grouped_space, name):
        space, y = grouped_space
        spec = get_objective(name)
        truth = spec.score(space, y, 0)
        shuffled = spec.score(space, np.random.default_rng(1).permutation(y), 0)
        assert truth.value > shuffled.value and truth.n_clusters == 10 and truth.degenerate is None
        assert np.isfinite(truth.value) and all(np.isfinite(v) for v in truth.parts.values())

    def test_degenerate_labels_score_the_worst_and_say_why(self, grouped_space, name):
        space, y = grouped_space
        for labels, reason in ((np.zeros(len(y), int), "one_cluster"), (np.full(len(y), -1), "all_noise"),
                               (np.arange(len(y)), "one_cluster_per_point")):
            worst = get_objective(name).score(space, labels, 0)
            assert worst.value == -1.0 and worst.degenerate == reason

    def test_on_a_sample_one_seed_gives_one_value_and_the_estimate_stays_near_the_full_score(
            self, grouped_space, name, monkeypatch):
        from selector.stages import objective

        space, y = grouped_space
        labels = np.where(y < 8, y, -1)  # some noise, so the noise-aware paths run
        full = get_objective(name).score(space, labels, 3)
        monkeypatch.setattr(objective, "SAMPLE_BOUND", len(y) // 3)  # the sampled path, as above 10,000 points
        first, again = (get_objective(name).score(space, labels, 3) for _ in range(2))
        assert first.value == again.value and first.sampled == again.sampled
        if first.sampled:  # geometric scores sample; graph scores do not depend on the bound
            others = {get_objective(name).score(space, labels, seed).value for seed in (4, 5, 6)}
            assert len(others | {first.value}) > 1  # the seed picks the sample
            assert abs(first.value - full.value) < 0.15 * max(abs(full.value), 0.1)
        else:
            assert first.value == full.value


def test_modularity_of_a_known_graph_and_noise_as_singletons():
    import scipy.sparse as sp

    # Two triangles joined by one edge: Newman's textbook value for the split is 5/14.
    edges = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)]
    rows, cols = zip(*edges)
    graph = sp.coo_matrix((np.ones(14), (rows + cols, cols + rows)), shape=(6, 6)).tocsr()
    assert modularity(graph, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(5 / 14)
    # Declaring a point noise cuts its edges: never better than keeping it in its cluster.
    assert modularity(graph, np.array([0, 0, -1, 1, 1, 1])) < 5 / 14


def test_mixed_units_are_z_scored_and_one_unit_is_left_alone():
    rng = np.random.default_rng(0)
    pixels = rng.random((100, 20))
    assert eval_space_params(pixels)["scaling"] == "none"
    mixed = pixels.copy()
    mixed[:, 0] *= 1000  # one feature in large units, like wine's proline
    assert eval_space_params(mixed)["scaling"] == "zscore"


def test_the_fine_objective_reads_a_ten_neighbour_graph_and_the_embeddings_own_silhouette(grouped_space):
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score
    from umap.umap_ import fuzzy_simplicial_set

    from selector.stages.objective import FINE_NEIGHBOURS, get_objective

    space, y = grouped_space
    points = space.vectors
    idx, dist = space.neighbours
    expected, _, _ = fuzzy_simplicial_set(points, FINE_NEIGHBOURS, np.random.RandomState(0), "euclidean",
                                          knn_indices=idx[:, :FINE_NEIGHBOURS].copy(),
                                          knn_dists=dist[:, :FINE_NEIGHBOURS].copy())
    assert abs(space.graph_at(FINE_NEIGHBOURS) - expected.tocsr()).max() < 1e-6
    assert space.graph_at(FINE_NEIGHBOURS).getnnz() < space.graph.getnnz()  # fewer neighbours than the 30 of the space
    # Without stored neighbours (a space built by hand) it finds them itself: the same graph.
    bare = EvalSpace(coords=space.coords, graph=space.graph, params=space.params, vectors=space.vectors)
    assert abs(bare.graph_at(FINE_NEIGHBOURS) - space.graph_at(FINE_NEIGHBOURS)).max() < 1e-6

    score = get_objective("fine_modularity_silhouette").score(space, y, 0)
    components = PCA(min(50, points.shape[1]), random_state=0).fit_transform(points)
    silhouette = silhouette_score(components, y)
    assert score.parts["silhouette_embedding"] == pytest.approx(silhouette, abs=1e-4)
    assert score.value == pytest.approx(modularity(space.graph_at(FINE_NEIGHBOURS), y) * silhouette ** 0.25, abs=1e-4)
    assert get_objective("fine_modularity_silhouette").score(space, np.zeros_like(y), 0).value == -1.0


def test_the_evaluation_graph_covers_every_point_below_umaps_bound(grouped_space):
    space, y = grouped_space
    assert space.coords.shape == (len(y), 50) and space.graph.shape == (len(y), len(y))
    assert space.graph_points is None and abs(space.graph - space.graph.T).max() < 1e-6


def test_wine_is_z_scored_so_proline_alone_does_not_decide_the_space():
    """scikit-learn's wine table: proline (hundreds) would decide every unscaled distance."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    X = X.astype(np.float32)
    space = build_eval_space(X, ReductionCache(None, "wine"), seed=0)
    assert space.params["scaling"] == "zscore"
    by_proline = KMeans(n_clusters=3, n_init=3, random_state=0).fit_predict(X)  # what the unscaled space sees
    spec = get_objective("modularity")
    assert spec.score(space, y, 0).value > spec.score(space, by_proline, 0).value + 0.1


def test_above_umaps_bound_the_graph_covers_its_sample_and_modularity_reads_the_sample(monkeypatch):
    import dataclasses

    from selector.stages import reduction

    monkeypatch.setitem(reduction.REDUCERS, "umap", dataclasses.replace(reduction.REDUCERS["umap"], max_fit_points=150))
    X, y = make_blobs(n_samples=400, centers=4, n_features=6, cluster_std=0.6, random_state=2)
    space = build_eval_space(X.astype(np.float32), ReductionCache(None, "big"), seed=0)
    assert space.coords.shape == (400, 50) and space.graph.shape == (150, 150) and len(space.graph_points) == 150
    score = get_objective("modularity").score(space, y, 0)
    assert score.sampled and score.sample_size == 150 and score.value > 0.6
    assert score.value == pytest.approx(modularity(space.graph, y[space.graph_points]))


def test_modularity_silhouette_is_the_product_and_carries_the_reference_silhouette(grouped_space):
    space, y = grouped_space
    score = get_objective("modularity_silhouette").score(space, y, 0)
    silhouette = silhouette_objective(space.coords, y).value
    assert score.value == pytest.approx(modularity(space.graph, y) * silhouette)
    assert score.parts["silhouette_umap"] == pytest.approx(silhouette) and "modularity" in score.parts


def test_the_product_does_not_chop_one_continuous_cluster_the_way_modularity_does():
    """Two round, well-separated blobs of many points: modularity alone prefers cutting each blob
    into pieces (its chance term shrinks faster than the cut costs); the product keeps the two."""
    X, y = make_blobs(n_samples=600, centers=[[0] * 5, [30] * 5], n_features=5, cluster_std=3.0, random_state=0)
    space = build_eval_space(X.astype(np.float32), ReductionCache(None, "two-blobs"), seed=0)
    from sklearn.cluster import KMeans

    chopped = KMeans(n_clusters=6, n_init=3, random_state=0).fit_predict(space.coords)
    modularity_spec, product = get_objective("modularity"), get_objective("modularity_silhouette")
    assert modularity_spec.score(space, chopped, 0).value > modularity_spec.score(space, y, 0).value
    assert product.score(space, y, 0).value > product.score(space, chopped, 0).value


def test_modularity_probe_is_modularity_times_a_root_of_the_probes_information(grouped_space):
    from selector.stages.objective import PROBE_WEIGHT, probe_score

    space, y = grouped_space
    score = get_objective("modularity_probe").score(space, y, 0)
    learnt = probe_score(space, y, 0)
    assert score.value == pytest.approx(modularity(space.graph, y) * max(learnt.value, 0) ** PROBE_WEIGHT)
    assert {"modularity", "probe_information", "probe_kappa"} <= set(score.parts) and learnt.value > 0.5


@pytest.mark.parametrize("chooser", ["modularity", "modularity_probe"])
def test_the_classes_under_two_far_apart_groups_beat_the_two_groups_where_the_silhouette_collapses(grouped_raw,
                                                                                                  chooser):
    """Ten classes in two far-apart groups of five: the silhouette (and its product with modularity)
    prefers the two groups — the collapse real photos showed; modularity and modularity_probe prefer the ten."""
    space, y = grouped_raw
    groups = (y >= 5).astype(int)
    chooser, silhouette = get_objective(chooser), get_objective("silhouette")
    assert silhouette.score(space, groups, 0).value > silhouette.score(space, y, 0).value
    assert chooser.score(space, y, 0).value > chooser.score(space, groups, 0).value


def test_the_probe_learns_real_clusters_and_not_random_labels():
    from selector.stages.probe import probe_features, probe_information

    X, y = make_blobs(n_samples=400, centers=6, n_features=20, random_state=1)
    features = probe_features(X, 0)
    real, kappa = probe_information(features, y, 0)
    noise, noise_kappa = probe_information(features, np.random.default_rng(0).permutation(y), 0)
    assert real > 1.5 and kappa > 0.9  # six learnable classes: close to ln 6 = 1.79 nats
    assert abs(noise) < 0.1 and abs(noise_kappa) < 0.1  # nothing to learn: the shuffled baseline cancels it


def test_the_soft_product_is_modularity_times_a_fourth_root_of_the_silhouette(grouped_space):
    from selector.stages.objective import SILHOUETTE_WEIGHT

    space, y = grouped_space
    score = get_objective("modularity_silhouette_soft").score(space, y, 0)
    silhouette = silhouette_objective(space.coords, y).value
    assert SILHOUETTE_WEIGHT == 0.25
    assert score.value == pytest.approx(modularity(space.graph, y) * max(silhouette, 0) ** 0.25)
    assert score.parts["silhouette_umap"] == pytest.approx(silhouette) and "modularity" in score.parts


def test_the_soft_product_keeps_the_classes_under_far_apart_groups_where_the_plain_product_collapses():
    """Classes as loose as real photos' (twice the spread of the grouped fixture): the plain product
    picks the two groups; the soft one the ten classes."""
    from umap.umap_ import fuzzy_simplicial_set

    X, y = two_groups_of_five(spread=2.0)
    X = X.astype(np.float32)
    graph, _, _ = fuzzy_simplicial_set(X, 30, np.random.RandomState(0), "euclidean")
    space = EvalSpace(coords=X, graph=graph.tocsr(), vectors=X)
    groups = (y >= 5).astype(int)
    plain, soft = get_objective("modularity_silhouette"), get_objective("modularity_silhouette_soft")
    assert plain.score(space, groups, 0).value > plain.score(space, y, 0).value  # the collapse real photos showed
    assert soft.score(space, y, 0).value > soft.score(space, groups, 0).value


def twin_classes(separation=4.0, per_class=12, pairs=15, seed=0):
    """Thirty classes of twelve points, in fifteen far-apart pairs of touching classes: a set of many
    people with a dozen photos each, where 30 neighbours reach across into the twin class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 20, size=(pairs, 10))
    offsets = rng.normal(0, 1, size=(pairs, 10))
    offsets *= separation / 2 / np.linalg.norm(offsets, axis=1, keepdims=True)
    y = np.repeat(np.arange(2 * pairs), per_class)
    X = np.concatenate([centres - offsets, centres + offsets])[y] + rng.normal(0, 0.5, size=(len(y), 10))
    return X.astype(np.float32), y


def test_a_graph_at_another_neighbour_count_is_umaps_graph_there_and_the_space_count_is_the_space_graph(
        grouped_space):
    from umap.umap_ import fuzzy_simplicial_set

    space, y = grouped_space
    idx, dist = space.neighbours
    for k in (12, 20):
        expected, _, _ = fuzzy_simplicial_set(space.vectors, k, np.random.RandomState(0), "euclidean",
                                              knn_indices=idx[:, :k].copy(), knn_dists=dist[:, :k].copy())
        assert abs(space.graph_at(k) - expected.tocsr()).max() < 1e-6
    assert space.graph_at(12).getnnz() < space.graph_at(20).getnnz() < space.graph.getnnz()
    assert space.graph_at(30) is space.graph and space.graph_at(12) is space.graph_at(12)


def test_a_partition_is_read_at_half_its_cluster_size_between_ten_and_thirty_neighbours():
    from selector.stages.objective import partition_neighbours

    assert partition_neighbours(np.repeat(np.arange(17), 36)) == 18
    assert partition_neighbours(np.repeat(np.arange(40), 10)) == 10  # ten photos of forty people: the floor
    assert partition_neighbours(np.repeat(np.arange(2), 300)) == 30  # two wide classes: the space's own scale
    # The size of a point's cluster: one large cluster and many small ones are read at the large one's scale.
    assert partition_neighbours(np.concatenate([np.zeros(400, int), np.repeat(np.arange(1, 21), 10)])) == 30
    assert partition_neighbours(np.concatenate([np.repeat(np.arange(10), 40), np.full(500, -1)])) == 20  # noise aside


def test_the_scaled_objective_is_modularity_at_the_partitions_scale_times_a_root_of_the_silhouette(grouped_space):
    from selector.stages.objective import partition_neighbours

    space, y = grouped_space
    score = get_objective("scaled_modularity_silhouette").score(space, y, 0)
    silhouette = silhouette_objective(space.coords, y).value
    graph = space.graph_at(partition_neighbours(y))
    assert partition_neighbours(y) == 30 and score.parts["graph_neighbours"] == 30
    assert score.value == pytest.approx(modularity(graph, y) * max(silhouette, 0) ** 0.25)
    halves = y + 10 * (np.arange(len(y)) % 2)  # 20 clusters of 30 points: read at 15 neighbours
    assert get_objective("scaled_modularity_silhouette").score(space, halves, 0).parts["graph_neighbours"] == 15


def test_many_small_classes_beat_their_pairs_when_each_is_read_at_its_own_scale():
    """Thirty classes of twelve in fifteen pairs: at the space's 30 neighbours the soft product (the previous
    default) prefers the pairs (the failure many people with a dozen photos each showed); read at each partition's own scale,
    the classes win."""
    X, y = twin_classes()
    space = build_eval_space(X, ReductionCache(None, "twins"), seed=0)
    pairs = y % 15
    soft, scaled = get_objective("modularity_silhouette_soft"), get_objective("scaled_modularity_silhouette")
    assert soft.score(space, pairs, 0).value > soft.score(space, y, 0).value
    assert scaled.score(space, y, 0).value > scaled.score(space, pairs, 0).value
    # Two wide clusters are read where the soft product reads them: the same value.
    two = (np.arange(len(y)) < len(y) // 2).astype(int)
    assert scaled.score(space, two, 0).value == pytest.approx(soft.score(space, two, 0).value)


def test_the_scaled_silhouette_objective_reads_small_clusters_finely_and_wide_ones_as_before(grouped_space):
    from selector.stages.objective import embedding_silhouette, partition_neighbours

    space, y = grouped_space
    objective, before = get_objective("scaled_modularity_silhouettes"), get_objective("scaled_modularity_silhouette")
    # Clusters of 60 points or more: read at the space's 30 neighbours with the UMAP silhouette, as before.
    score = objective.score(space, y, 0)
    assert score.parts["graph_neighbours"] == 30 and "silhouette_embedding" not in score.parts
    assert score.value == pytest.approx(before.score(space, y, 0).value)
    # Clusters of ten: modularity at five neighbours (the other stops at ten), and a silhouette that is
    # the UMAP's^(5/30) × the embedding's^(25/30).
    tens = np.arange(len(y)) // 10
    fine = objective.score(space, tens, 0)
    assert partition_neighbours(tens) == 10 and fine.parts["graph_neighbours"] == 5
    umap, embedding = silhouette_objective(space.coords, tens).value, embedding_silhouette(space, tens, 0).value
    silhouette = max(umap, 0) ** (5 / 30) * max(embedding, 0) ** (25 / 30)
    assert fine.parts["silhouette_scaled"] == pytest.approx(silhouette)
    assert fine.value == pytest.approx(max(modularity(space.graph_at(5), tens), 0) * silhouette ** 0.25)
