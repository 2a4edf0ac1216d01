"""The clusterer registry: one conformance class run over every registered clusterer, on the code
paths production uses (a trial's cached reduction, the served ``ClusterPipeline``, joblib)."""

import dataclasses

import joblib
import numpy as np
import optuna
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_mutual_info_score

from selector.stages import clustering
from selector.stages.clusterers import KMeansClusterer
from selector.stages.clustering import (CLUSTERERS, MANY_DIMS, ClusterModel, ClustererSpec, Declined, OwnPredict,
                                 get_clusterer, max_clusters, parse_clusterers, register_clusterer, suggest_clusterer)

# Parameters that should find three well-separated blobs: the one thing a new clusterer adds here.
GOOD = {
    "kmeans": {"n_clusters": 3},
    "agglomerative": {"linkage": "ward", "mode": "k", "n_clusters": 3},
    "hdbscan": {"min_cluster_size": 10, "min_samples": 5, "cluster_selection_method": "eom"},
    "spectral": {"n_clusters": 3, "n_neighbors": 10},
    "affinity_propagation": {"damping": 0.9, "preference_quantile": 0.0},
    "gmm": {"n_clusters": 3, "covariance_type": "full"},
}
CENTRES = [[0, 0, 0, 0], [6, 6, 0, 0], [0, 6, 6, 6]]


def blobs(n: int, seed: int, dims: int = 4):
    centres = np.hstack([CENTRES, np.zeros((3, dims - 4))]) if dims > 4 else CENTRES
    return make_blobs(n_samples=n, centers=centres, n_features=dims, cluster_std=0.6, random_state=seed)


@pytest.fixture(scope="module")
def train():
    return blobs(150, seed=1)


def test_every_registered_clusterer_has_a_conformance_case():
    assert set(GOOD) == set(CLUSTERERS)


@pytest.mark.parametrize("name", list(CLUSTERERS))
class TestClustererConformance:
    def model(self, name, X, seed=0):
        return ClusterModel({"name": name, **GOOD[name]}, seed=seed).fit(X)

    def test_fit_labels_every_point(self, name, train):
        X, y = train
        model = self.model(name, X)
        assert model.labels_.shape == (150,) and model.labels_.dtype == np.int64
        assert adjusted_mutual_info_score(y, model.labels_) > 0.9
        assert model.placement_.name == get_clusterer(name).placement.name

    def test_predict_places_unseen_points_in_their_clusters(self, name, train):
        model = self.model(name, train[0])
        X_new, y_new = blobs(60, seed=7)  # the same three centres, points it never saw
        labels, confidence = model.place(X_new)
        assert labels.shape == confidence.shape == (60,) and labels.dtype == np.int64
        assert ((confidence >= 0) & (confidence <= 1)).all()
        assert adjusted_mutual_info_score(y_new, labels) > 0.9
        far = train[0].mean(axis=0) + 100 * train[0].std(axis=0)
        label, conf = model.place(far[None])
        assert label.shape == (1,) and 0 <= conf[0] <= 1

    def test_training_points_get_their_own_cluster_back(self, name, train):
        model = self.model(name, train[0])
        assert (model.predict(train[0]) == model.labels_).mean() >= 0.95

    def test_seeded_fits_are_reproducible(self, name, train):
        np.testing.assert_array_equal(self.model(name, train[0]).labels_, self.model(name, train[0]).labels_)

    def test_a_joblib_round_trip_predicts_the_same(self, name, train, tmp_path):
        model = self.model(name, train[0])
        joblib.dump(model, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
        X_new, _ = blobs(40, seed=8)
        for ours, theirs in zip(model.place(X_new), loaded.place(X_new)):
            np.testing.assert_array_equal(ours, theirs)

    def test_the_trial_path_and_the_serving_path_agree(self, name, train, tmp_path):
        from selector.stages.pipeline import ClusterPipeline
        from selector.stages.reduction import ReductionCache

        reducer = {"name": "pca", "scaling": "zscore", "n_components": 3}
        reduced = ReductionCache(tmp_path, "blobs").reduce(train[0].astype(np.float32), reducer, seed=0)
        in_trial = ClusterModel({"name": name, **GOOD[name]}, seed=0).fit(reduced).labels_
        served = ClusterPipeline(reducer, {"name": name, **GOOD[name]}, seed=0).fit(train[0])
        np.testing.assert_array_equal(served.labels_, in_trial)
        assert (served.predict(train[0]) == in_trial).mean() >= 0.95

    def test_its_search_space_proposes_parameters_it_fits_or_declines(self, name, train):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for dims in (4, MANY_DIMS + 1):
            X, _ = blobs(150, seed=1, dims=dims)
            for _ in range(3):
                params = suggest_clusterer(study.ask(), len(X), [name])
                assert params["name"] == name
                if "n_clusters" in params:
                    assert 2 <= params["n_clusters"] <= max_clusters(len(X))
                try:
                    labels = ClusterModel(params, seed=0).fit(X).labels_
                except Declined:  # refusing at a sane cost is allowed; any other error is not
                    continue
                assert labels.shape == (150,)

    def test_proposed_parameters_survive_the_trial_record(self, name):
        """What a served refit reads back from the trial's params is what the trial fitted."""
        from selector.study.trials import pipeline_params

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            params = suggest_clusterer(trial, 150, [name])
            assert pipeline_params({"reducer": "none", **trial.params})[1] == params

    def test_above_its_bound_it_fits_a_seeded_sample_and_places_the_rest(self, name, monkeypatch):
        monkeypatch.setitem(clustering.CLUSTERERS, name, dataclasses.replace(CLUSTERERS[name], max_fit_points=120))
        X, y = blobs(400, seed=1)
        model = self.model(name, X)
        assert model.fit_sample_size_ == 120 and len(model.train_labels_) == 120
        assert model.labels_.shape == (400,) and adjusted_mutual_info_score(y, model.labels_) > 0.9
        labels, confidence = model.place(X)
        assert (labels == model.labels_).mean() > 0.95 and ((0 <= confidence) & (confidence <= 1)).all()
        assert self.model(name, X[:100]).fit_sample_size_ == 0


def test_a_clusterer_list_is_all_or_registered_names_and_all_is_reserved():
    with pytest.raises(RuntimeError, match="not fitted"):
        ClusterModel({"name": "kmeans", "n_clusters": 2}).predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"unknown clusterer\(s\) \['dbscan'\]; valid: all, kmeans"):
        parse_clusterers("kmeans,dbscan")
    assert parse_clusterers("all") == list(CLUSTERERS)
    with pytest.raises(ValueError, match="unknown clusterer 'all'"):  # a word of `clusterers`, not a clusterer
        get_clusterer("all")
    with pytest.raises(ValueError, match="reserved"):
        register_clusterer(ClustererSpec("all", KMeansClusterer.build, KMeansClusterer.suggest, OwnPredict()))


def test_k_bound_reaches_clusters_of_five_points_up_to_a_few_hundred():
    from selector.stages.clustering import MAX_CLUSTERS

    assert max_clusters(400) == 80 and max_clusters(1797) == 359 and max_clusters(10**6) == MAX_CLUSTERS == 500
    assert max_clusters(10) == 2 and max_clusters(3) == 2


def test_k_is_drawn_log_uniformly_so_small_k_stays_well_covered():
    """400 faces of 40 people can get k = 40, and a third of the draws still land on k <= 10."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ks = [suggest_clusterer(study.ask(), 2000, ["kmeans"])["n_clusters"] for _ in range(600)]
    assert max(ks) > 200 and min(ks) == 2
    assert 0.25 < np.mean(np.asarray(ks) <= 10) < 0.45  # uniform over 2…400 would give 2 %


@pytest.mark.parametrize("params, message", [
    ({"name": "spectral", "n_clusters": 400, "n_neighbors": 10}, "declined above k·n"),
    ({"name": "gmm", "n_clusters": 500, "covariance_type": "full"}, "declined above"),
])
def test_k_in_the_hundreds_is_declined_where_its_cost_explodes(params, message):
    X = np.random.default_rng(0).normal(size=(6000, 40)).astype(np.float32)
    with pytest.raises(Declined, match=message):
        ClusterModel(params).fit(X)


def test_a_full_covariance_mixture_in_many_dimensions_is_declined_not_attempted():
    from selector.stages.clusterers import FULL_COVARIANCE_MAX_DIM

    X = np.random.default_rng(0).normal(size=(200, FULL_COVARIANCE_MAX_DIM + 1))
    with pytest.raises(Declined, match=r"declined for d=65 > 64"):
        ClusterModel({"name": "gmm", "n_clusters": 3, "covariance_type": "full"}).fit(X)
    assert ClusterModel({"name": "gmm", "n_clusters": 3, "covariance_type": "diag"}).fit(X).labels_.shape == (200,)


def test_hdbscan_in_many_dimensions_fits_a_smaller_sample_and_the_rest_vote(monkeypatch):
    spec = dataclasses.replace(CLUSTERERS["hdbscan"], max_fit_points=300, many_dims_fit_points=150)
    monkeypatch.setitem(clustering.CLUSTERERS, "hdbscan", spec)
    params = {"name": "hdbscan", **GOOD["hdbscan"]}
    for dims, fitted in ((4, 0), (MANY_DIMS, 0), (MANY_DIMS + 1, 150)):
        X, _ = blobs(250, seed=1, dims=dims)
        assert ClusterModel(params, seed=0).fit(X).fit_sample_size_ == fitted, dims
    X, y = blobs(400, seed=1, dims=MANY_DIMS + 1)
    model = ClusterModel(params, seed=0).fit(X)
    assert model.placement_.name == "nearest" and model.fit_sample_size_ == 150
    assert adjusted_mutual_info_score(y, model.labels_) > 0.9
    assert ClusterModel(params, seed=0).fit(X[:, :4]).placement_.name == "approximate_predict"


@pytest.mark.parametrize("name", ["kmeans", "hdbscan", "agglomerative"])
def test_a_model_pickled_before_placements_were_objects_loads_and_predicts_the_same(name, train, tmp_path):
    """Format 1 kept the rule as a string ``assign_`` (and, for votes, ``train_`` and ``neighbours_``):
    a champion registered then still loads into this code."""
    model = ClusterModel({"name": name, **GOOD[name]}, seed=0).fit(train[0])
    expected = model.place(train[0][:30])
    placement = model.placement_
    old = {k: v for k, v in model.__dict__.items() if k not in ("placement_", "format_")}
    old["assign_"] = placement.name
    if placement.name == "nearest":
        old.update(neighbours_=placement.neighbours_, train_=train[0].astype(np.float32))
    joblib.dump(old, tmp_path / "state.joblib")
    restored = ClusterModel.__new__(ClusterModel)
    restored.__setstate__(joblib.load(tmp_path / "state.joblib"))
    for ours, theirs in zip(expected, restored.place(train[0][:30])):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(RuntimeError, match="format 99"):
        ClusterModel.__new__(ClusterModel).__setstate__({**old, "format_": 99})


def test_hdbscan_computes_its_prediction_data_when_it_first_places_points(train):
    """Not during the fit (a trial that fits every point never places one), and then the same data and
    the same placements as HDBSCAN's own ``prediction_data=True``."""
    import hdbscan

    model = ClusterModel({"name": "hdbscan", **GOOD["hdbscan"]}, seed=0).fit(train[0])
    with pytest.raises(AttributeError):
        model.estimator_.prediction_data_
    X_new, _ = blobs(60, seed=7)
    labels, strengths = model.place(X_new)
    reference = hdbscan.HDBSCAN(**GOOD["hdbscan"], prediction_data=True).fit(train[0])
    expected = hdbscan.approximate_predict(reference, X_new)
    np.testing.assert_array_equal(labels, expected[0])
    np.testing.assert_array_equal(strengths, np.clip(np.nan_to_num(expected[1]), 0.0, 1.0))
    assert model.estimator_.prediction_data_ is not None


def test_the_design_docs_example_clusterer_is_one_unit(train, tmp_path, monkeypatch):
    """docs/design.md's "Adding a clusterer" diff, applied: its class in the clusterers module and its
    known-good parameters are all a new clusterer needs to pass the conformance checks."""
    import re
    from pathlib import Path

    from selector.stages import clusterers

    doc = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    diff = re.search(r"## Adding a clusterer.*?```diff\n(.*?)```", doc, re.S).group(1)
    unit_part, test_part = diff.split("--- a/tests/test_clustering.py")
    code = "\n".join(line[1:] for line in unit_part.splitlines() if line.startswith("+") and not line.startswith("+++"))
    good = re.search(r'\+\s+"(\w+)": (\{.*\}),', test_part)
    name, before = good.group(1), set(vars(clusterers))
    try:
        exec(compile(code, "docs/design.md", "exec"), vars(clusterers))
        assert name in CLUSTERERS and list(CLUSTERERS)[-1] == name
        monkeypatch.setitem(GOOD, name, eval(good.group(2)))
        checks = TestClustererConformance()
        for check in ("test_fit_labels_every_point", "test_predict_places_unseen_points_in_their_clusters",
                      "test_training_points_get_their_own_cluster_back", "test_seeded_fits_are_reproducible"):
            getattr(checks, check)(name, train)
        checks.test_a_joblib_round_trip_predicts_the_same(name, train, tmp_path)
    finally:  # the registry is global: the example leaves it as it was
        CLUSTERERS.pop(name, None)
        for added in set(vars(clusterers)) - before:
            vars(clusterers).pop(added)
