"""One contract, run over every registered clusterer."""

import numpy as np
import optuna
import pytest
from sklearn.datasets import make_blobs

from selector.clustering import CLUSTERERS, ClusterModel, max_clusters, parse_clusterers, suggest_clusterer

# Parameters that should find three well-separated blobs.
GOOD = {
    "kmeans": {"n_clusters": 3},
    "agglomerative": {"linkage": "ward", "mode": "k", "n_clusters": 3},
    "hdbscan": {"min_cluster_size": 10, "min_samples": 5, "cluster_selection_method": "eom"},
    "spectral": {"n_clusters": 3, "n_neighbors": 10},
    "affinity_propagation": {"damping": 0.9, "preference_quantile": 0.0},
    "gmm": {"n_clusters": 3, "covariance_type": "full"},
}


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=150, centers=3, n_features=4, cluster_std=0.6, random_state=1)


def test_every_registered_clusterer_has_a_contract_case():
    assert set(GOOD) == set(CLUSTERERS)


@pytest.mark.parametrize("name", list(CLUSTERERS))
def test_clusterer_contract(name, blobs):
    from sklearn.metrics import adjusted_mutual_info_score

    X, y = blobs
    spec = CLUSTERERS[name]
    assert spec.assign in ("predict", "approximate_predict", "nearest") and spec.memory in ("linear", "quadratic")

    model = ClusterModel({"name": name, **GOOD[name]}, seed=0).fit(X)
    assert model.labels_.shape == (150,) and model.labels_.dtype == np.int64
    assert adjusted_mutual_info_score(y, model.labels_) > 0.9

    labels, confidence = model.predict(X)
    assert labels.shape == confidence.shape == (150,)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert (labels == model.labels_).mean() >= 0.95  # training points get their own cluster back

    far = X.mean(axis=0) + 100 * X.std(axis=0)
    label, conf = model.predict(far[None])
    assert label.shape == (1,) and 0 <= conf[0] <= 1

    refit = ClusterModel({"name": name, **GOOD[name]}, seed=0).fit(X)
    np.testing.assert_array_equal(refit.labels_, model.labels_)  # seeded: trials are reproducible


@pytest.mark.parametrize("name", list(CLUSTERERS))
def test_search_space_proposes_fittable_parameters(name, blobs):
    X, _ = blobs
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        params = suggest_clusterer(trial, len(X), [name])
        assert params["name"] == name
        ClusterModel(params, seed=0).fit(X)
        if "n_clusters" in params:
            assert 2 <= params["n_clusters"] <= max_clusters(len(X))


def test_unfitted_model_and_unknown_names_are_refused():
    with pytest.raises(RuntimeError, match="not fitted"):
        ClusterModel({"name": "kmeans", "n_clusters": 2}).predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"unknown clusterer\(s\) \['dbscan'\]; valid: all, kmeans"):
        parse_clusterers("kmeans,dbscan")
    assert parse_clusterers("all") == list(CLUSTERERS)


def test_k_bound_grows_with_n_and_stays_below_n():
    assert max_clusters(10) == 3 and max_clusters(1797) == 42 and max_clusters(10**6) == 100
    assert max_clusters(3) == 2


def test_quadratic_clusterers_declare_a_bound():
    for spec in CLUSTERERS.values():
        assert spec.memory == "linear" or spec.max_fit_points is not None, spec.name


@pytest.mark.parametrize("name", [n for n, s in CLUSTERERS.items() if s.max_fit_points])
def test_above_its_bound_a_clusterer_fits_a_sample_and_assigns_the_rest(name, monkeypatch):
    import dataclasses

    from sklearn.metrics import adjusted_mutual_info_score

    from selector import clustering

    X, y = make_blobs(n_samples=400, centers=3, n_features=4, cluster_std=0.6, random_state=1)
    monkeypatch.setitem(clustering.CLUSTERERS, name, dataclasses.replace(CLUSTERERS[name], max_fit_points=120))
    model = ClusterModel({"name": name, **GOOD[name]}, seed=0).fit(X)
    assert model.fit_sample_size_ == 120 and len(model.train_labels_) == 120
    assert model.labels_.shape == (400,) and adjusted_mutual_info_score(y, model.labels_) > 0.9
    labels, confidence = model.predict(X)
    assert (labels == model.labels_).mean() > 0.95 and ((0 <= confidence) & (confidence <= 1)).all()
    assert ClusterModel({"name": name, **GOOD[name]}, seed=0).fit(X[:100]).fit_sample_size_ == 0


def test_a_full_covariance_mixture_in_many_dimensions_is_declined_not_attempted():
    from selector.clustering import FULL_COVARIANCE_MAX_DIM, Declined

    X = np.random.default_rng(0).normal(size=(200, FULL_COVARIANCE_MAX_DIM + 1))
    with pytest.raises(Declined, match=r"declined for d=65 > 64"):
        ClusterModel({"name": "gmm", "n_clusters": 3, "covariance_type": "full"}).fit(X)
    assert ClusterModel({"name": "gmm", "n_clusters": 3, "covariance_type": "diag"}).fit(X).labels_.shape == (200,)


def test_hdbscan_in_many_dimensions_fits_a_smaller_sample(monkeypatch):
    import dataclasses

    from selector import clustering
    from selector.clustering import MANY_DIMS

    spec = dataclasses.replace(CLUSTERERS["hdbscan"], max_fit_points=300, many_dims_fit_points=120)
    monkeypatch.setitem(clustering.CLUSTERERS, "hdbscan", spec)
    params = {"name": "hdbscan", **GOOD["hdbscan"]}
    for dims, fitted in ((4, 0), (MANY_DIMS, 0), (MANY_DIMS + 1, 120)):
        X, _ = make_blobs(n_samples=250, centers=3, n_features=dims, cluster_std=0.6, random_state=1)
        assert ClusterModel(params, seed=0).fit(X).fit_sample_size_ == fitted, dims
    assert CLUSTERERS["hdbscan"].fit_bound(MANY_DIMS + 1) < CLUSTERERS["hdbscan"].fit_bound(MANY_DIMS)


def test_in_many_dimensions_hdbscan_assigns_the_rest_by_nearest_sampled_neighbours(monkeypatch):
    import dataclasses

    from sklearn.metrics import adjusted_mutual_info_score

    from selector import clustering
    from selector.clustering import MANY_DIMS

    spec = dataclasses.replace(CLUSTERERS["hdbscan"], many_dims_fit_points=150)
    monkeypatch.setitem(clustering.CLUSTERERS, "hdbscan", spec)
    X, y = make_blobs(n_samples=400, centers=3, n_features=MANY_DIMS + 1, cluster_std=0.6, random_state=1)
    model = ClusterModel({"name": "hdbscan", **GOOD["hdbscan"]}, seed=0).fit(X)
    assert model.assign_ == "nearest" and model.fit_sample_size_ == 150
    assert adjusted_mutual_info_score(y, model.labels_) > 0.9
    labels, _ = model.predict(X[:40])  # a served model keeps the rule it was fitted with
    assert (labels == model.labels_[:40]).mean() > 0.95
    low = ClusterModel({"name": "hdbscan", **GOOD["hdbscan"]}, seed=0).fit(X[:, :4])
    assert low.assign_ == "approximate_predict"
