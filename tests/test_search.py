"""One trial's scoring: what every trial logs, whatever its labels."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from selector.stages.objective import get_objective
from selector.stages.reduction import ReductionCache
from selector.study.trials import SearchContext, score_trial


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    X, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
    return SearchContext(vectors=X.astype(np.float32), labels=y, clusterers=["kmeans"], seed=0,
                         cache=ReductionCache(tmp_path_factory.mktemp("reductions"), "blobs"))


@pytest.mark.parametrize("objective", ["modularity", "modularity_silhouette", "calinski_harabasz"])
@pytest.mark.parametrize("labels, degenerate", [
    (np.zeros(120, dtype=int), "one_cluster"), (np.full(120, -1), "all_noise"), (np.arange(120), "one_cluster_per_point"),
])
def test_a_degenerate_trial_logs_the_seed_papers_silhouette_as_minus_one(context, objective, labels, degenerate):
    """Sorting trials by `silhouette_umap` in the MLflow UI must not hide the degenerate ones."""
    context.objective = get_objective(objective)
    value, metrics, tags = score_trial(context, labels)
    assert value == -1 and tags["degenerate"] == degenerate
    assert metrics["silhouette_umap"] == -1 and metrics["objective_value"] == -1


def test_a_good_trial_logs_its_silhouette_beside_an_objective_that_does_not_compute_it(context):
    from selector.stages.objective import silhouette_objective

    context.objective = get_objective("modularity")
    labels = np.repeat(np.arange(3), 40)
    _, metrics, _ = score_trial(context, labels)
    expected = silhouette_objective(context.eval_space.coords, labels, seed=0).value
    assert metrics["silhouette_umap"] == pytest.approx(expected) and -1 < expected <= 1


def test_trials_run_with_no_tracking_store_and_evaluate_repeats_them(context, monkeypatch):
    """A trial is a pure evaluation: a study with no observer never reaches MLflow, and ``evaluate``
    on a trial's parameters gives its value and labels again."""
    import mlflow
    import optuna

    from selector import retry

    from selector.study import trials

    def no_store(*args, **kwargs):
        raise AssertionError("a trial with no observer reached MLflow")

    monkeypatch.setattr(retry, "client", no_store)
    monkeypatch.setattr(mlflow, "MlflowClient", no_store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    context.objective = get_objective("modularity_silhouette_soft")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(lambda trial: trials.run_trial(trial, context), n_trials=4)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    best = study.best_trial
    assert {"objective_value", "n_clusters", "silhouette_umap", "ami"} <= set(best.user_attrs)
    result = trials.evaluate(context, best.params)
    assert result.value == best.value and result.metrics["ami"] == best.user_attrs["ami"]
    assert len(np.unique(result.labels)) == best.user_attrs["n_clusters"]


def test_observers_see_each_trial_and_one_that_raises_fails_the_trial(context):
    import optuna

    from selector.study import trials
    from selector.stages.clustering import Declined

    seen = []

    class Recorder(trials.TrialObserver):
        def started(self, trial, params):
            seen.append(("started", trial.number, params["clusterer"]))

        def finished(self, trial, result):
            seen.append(("finished", trial.number, trial.user_attrs["objective_value"] == result.value))

        def declined(self, trial, params, reason):
            seen.append(("declined", trial.number, reason))

        def failed(self, trial, params, error):
            seen.append(("failed", trial.number, str(error)))

    class Breaks(trials.TrialObserver):
        def finished(self, trial, result):
            if trial.number == 1:
                raise RuntimeError("the store went away")

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trials.run_trial(trial, context, [Recorder(), Breaks()]), n_trials=3,
                   catch=(RuntimeError,))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert seen[:2] == [("started", 0, "kmeans"), ("finished", 0, True)]
    assert ("failed", 1, "the store went away") in seen and seen[-1] == ("finished", 2, True)

    real_evaluate = trials.evaluate

    def declines(ctx, params):
        raise Declined("too costly here")

    trials.evaluate = declines
    try:
        study.optimize(lambda trial: trials.run_trial(trial, context, [Recorder()]), n_trials=1)
    finally:
        trials.evaluate = real_evaluate
    assert study.trials[-1].state.name == "PRUNED" and seen[-1] == ("declined", 3, "too costly here")
