import numpy as np
import pytest
from sklearn.datasets import make_blobs

from selector.objective import silhouette_objective, stratified_sample, validation_metrics


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
    assert half.value == pytest.approx(half.silhouette_clustered * (1 - half.noise_fraction))
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
