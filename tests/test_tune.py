"""The `tune` job in-process on small generated data, and once through `mlflow run`.

Most of these run whole studies and are marked ``slow``; request checks and the stale-trial
callback are not."""

import json

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from selector.stages import clusterers, clustering

from selector.study import session as study
from selector.jobs.tune import tune_job
from selector.stages.objective import DEFAULT_OBJECTIVE
from selector.study.trials import pipeline_params

FAST = "kmeans,agglomerative,hdbscan"


@pytest.fixture
def blob_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default journal storage lands in the working directory
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    path = tmp_path / "blobs.npz"
    np.savez(path, X=X, y=y)
    return path


def child_runs(parent_run_id):
    return mlflow.search_runs(search_all_experiments=True,
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


@pytest.mark.slow
def test_tune_logs_a_parent_run_and_one_nested_run_per_trial(blob_file):
    result = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=6, clusterers=FAST, seed=1)
    parent = mlflow.get_run(result.parent_run_id)
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed

    key = embed(load_dataset(str(blob_file)), "none").key  # the data's content and the encoder's identity
    assert parent.data.tags["optuna_study_name"] == result.study.study_name == f"blobs-none-{DEFAULT_OBJECTIVE}-{key[:8]}"
    metrics = parent.data.metrics
    assert metrics["n_trials_complete"] == 6 and metrics["best_silhouette_umap"] > 0.5
    assert parent.data.tags["objective"] == DEFAULT_OBJECTIVE and metrics["best_objective_value"] > 0.5
    assert -1 <= metrics["spearman_objective_ami"] <= 1
    assert metrics["selection_regret"] == pytest.approx(metrics["oracle_ami"] - metrics["best_ami"])
    assert -1 <= metrics["spearman_silhouette_ami"] <= 1 and metrics["best_ami"] > 0.9

    children = child_runs(result.parent_run_id)
    assert len(children) == 6 and set(children["status"]) == {"FINISHED"}
    assert sorted(children["tags.optuna_trial_number"].astype(int)) == list(range(6))
    best = children[children["run_id"] == parent.data.tags["best_trial_run_id"]].iloc[0]
    assert best["metrics.silhouette_umap"] == metrics["best_silhouette_umap"]
    assert best["metrics.objective_value"] == metrics["best_objective_value"] == result.study.best_value
    assert best["metrics.ami"] == metrics["best_ami"]
    # The chosen trial's clustering as a file: every point once, with its cluster, confidence and label.
    clusters = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=result.parent_run_id, artifact_path="clusters.csv"))
    assert list(clusters.columns) == ["id", "cluster", "confidence", "label"] and len(clusters) == 90
    assert clusters["id"].astype(str).tolist() == [str(i) for i in range(90)] and clusters["confidence"].between(0, 1).all()
    assert clusters.loc[clusters["cluster"] != -1, "cluster"].nunique() == best["metrics.n_clusters"]
    from sklearn.metrics import adjusted_mutual_info_score

    assert adjusted_mutual_info_score(clusters["label"], clusters["cluster"]) == pytest.approx(best["metrics.ami"])
    for column in ("params.dataset", "params.encoder", "params.reducer", "params.reducer.scaling", "metrics.objective_value",
                   "params.clusterer", "metrics.n_clusters", "metrics.noise_fraction", "metrics.fit_seconds",
                   "metrics.ari", "metrics.nmi", "metrics.reduce_seconds", "metrics.cluster_seconds",
                   "metrics.score_seconds", "metrics.clusterer_fit_sample"):
        assert children[column].notna().all(), column
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING  # no INFO line per trial under the bar
    first = result.study.trials[0]  # the seed paper's pipeline is tried first
    assert first.params["reducer"] == "umap" and first.params["clusterer.linkage"] == "ward"

    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(result.parent_run_id)}
    assert {"trials.csv", "optimization_history.png", "objective_vs_ami.png", "cluster_map.png"} <= artifacts


@pytest.mark.slow
def test_a_study_fits_each_reduction_and_each_neighbour_graph_once(blob_file):
    from selector.stages.objective import EVAL_SPACE

    result = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=12, clusterers="kmeans", seed=2)
    reductions = {json_key(pipeline_params(t.params)[0]) for t in result.study.trials} | {json_key(EVAL_SPACE)}
    graphs = {(r["scaling"], r["metric"]) for r in map(json.loads, reductions) if r["name"] == "umap"}
    assert result.work["reductions_fitted"] == len(reductions) < 12 + 1
    assert result.work["neighbour_graphs_built"] == len(graphs)
    worker = mlflow.get_run(result.parent_run_id).data.metrics
    assert worker["reductions_fitted"] == len(reductions) and worker["eval_space_seconds"] > 0
    again = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=12, clusterers="kmeans", seed=2,
                     study_name="same-trials-again")  # same seed, same trials: everything comes from the cache
    assert again.work["reductions_fitted"] == 0 and again.work["neighbour_graphs_built"] == 0


def json_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


@pytest.mark.slow
def test_resume_adds_trials_under_the_same_parent(blob_file):
    first = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=3, clusterers="kmeans", study_name="resume-me")
    second = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=2, clusterers="kmeans", study_name="resume-me")
    assert second.parent_run_id == first.parent_run_id
    assert len(second.study.trials) == 5 and second.metrics["n_trials_complete"] == 5
    assert len(child_runs(first.parent_run_id)) == 5
    assert (blob_file.parent / study.DEFAULT_JOURNAL).is_file()


@pytest.mark.slow
def test_a_study_name_holds_one_data_set(blob_file, tmp_path):
    tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=1, clusterers="kmeans", study_name="mine")
    X, _ = make_blobs(n_samples=50, centers=2, n_features=6, random_state=9)
    np.save(tmp_path / "other.npy", X)
    with pytest.raises(ValueError, match="study 'mine' optimises dataset="):
        tune_job(workers=1, dataset=str(tmp_path / "other.npy"), encoder="none", n_trials=1, study_name="mine")


@pytest.mark.slow
def test_a_study_keeps_its_objective_and_another_objective_gets_its_own_study(blob_file):
    first = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=2, clusterers="kmeans", study_name="by-modularity")
    assert first.study.user_attrs["objective"] == DEFAULT_OBJECTIVE
    with pytest.raises(ValueError, match=f"optimises objective='{DEFAULT_OBJECTIVE}', not 'silhouette'.*objective={DEFAULT_OBJECTIVE}"):
        tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=1, study_name="by-modularity", objective="silhouette")
    derived = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=2, clusterers="kmeans", objective="silhouette")
    assert derived.study.study_name != first.study.study_name and "silhouette" in derived.study.study_name
    assert derived.metrics["best_objective_value"] == derived.metrics["best_silhouette_umap"]
    with pytest.raises(ValueError, match="unknown objective 'nope'; valid: silhouette"):
        tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=1, objective="nope")


@pytest.mark.slow
def test_labels_never_steer_the_search(blob_file, tmp_path):
    """Shuffled labels: the same trials, the same choice; only the validation numbers move."""
    with np.load(blob_file) as data:
        X, y = data["X"], data["y"]
    np.savez(tmp_path / "shuffled.npz", X=X, y=np.random.default_rng(0).permutation(y))
    kwargs = dict(encoder="none", n_trials=5, clusterers=FAST, seed=4)
    true = tune_job(workers=1, dataset=str(blob_file), study_name="true", **kwargs)
    shuffled = tune_job(workers=1, dataset=str(tmp_path / "shuffled.npz"), study_name="shuffled", **kwargs)
    assert [t.params for t in true.study.trials] == [t.params for t in shuffled.study.trials]
    assert [t.value for t in true.study.trials] == [t.value for t in shuffled.study.trials]
    assert true.study.best_trial.number == shuffled.study.best_trial.number
    assert shuffled.metrics["best_ami"] < true.metrics["best_ami"]


@pytest.mark.slow
def test_a_trial_that_raises_fails_alone(blob_file, monkeypatch):
    real = clustering.CLUSTERERS["agglomerative"]

    def broken(params, Z, seed):
        raise FloatingPointError("boom")

    monkeypatch.setitem(clustering.CLUSTERERS, "agglomerative", real.__class__(**{**real.__dict__, "build": broken}))
    result = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=4, clusterers="agglomerative,kmeans")
    states = [t.state for t in result.study.trials]
    assert optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.COMPLETE in states
    children = child_runs(result.parent_run_id)
    failed = children[children["status"] == "FAILED"]
    assert len(failed) == states.count(optuna.trial.TrialState.FAIL)
    assert failed["tags.error"].str.contains("boom").all()
    assert result.metrics["n_trials_failed"] == len(failed)


@pytest.mark.slow
def test_a_declined_trial_is_pruned_and_its_run_says_why(blob_file, monkeypatch):
    monkeypatch.setattr(clusterers, "FULL_COVARIANCE_MAX_DIM", 1)
    result = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=8, clusterers="gmm", seed=3)
    pruned = [t for t in result.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.params["clusterer.covariance_type"] == "full" for t in pruned)
    assert result.metrics["n_trials_declined"] == len(pruned) < 8
    children = child_runs(result.parent_run_id)
    declined = children[children["tags.declined"].notna()]
    assert len(declined) == len(pruned) and set(declined["status"]) == {"FINISHED"}
    assert declined["tags.declined"].str.contains("O\\(n·k·d²\\)").all()


@pytest.mark.parametrize("kwargs, message", [
    ({"n_trials": 0}, "`n_trials` must be an int >= 1; got 0"),
    ({"clusterers": "kmeans,dbscan"}, r"unknown clusterer\(s\) \['dbscan'\]"),
    ({"timeout": -1}, "`timeout` must be >= 0"),
    ({"workers": -1}, r"`workers` must be an int >= 0 \(0 = this machine's cores\); got -1"),
    ({"workers": 2, "storage": "sqlite:///optuna.db"}, "`workers`=2 needs a storage several processes can share"),
])
def test_bad_requests_leave_no_study_and_no_run(blob_file, kwargs, message):
    before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(ValueError, match=message):
        tune_job(**{"workers": 1, **kwargs}, dataset=str(blob_file), encoder="none")
    assert not (blob_file.parent / study.DEFAULT_JOURNAL).exists()
    assert len(mlflow.search_runs(search_all_experiments=True)) == before


def test_too_small_and_constant_data_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "small.npy", np.random.default_rng(0).normal(size=(7, 3)))
    with pytest.raises(ValueError, match="7 points; clustering needs at least 10"):
        tune_job(workers=1, dataset=str(tmp_path / "small.npy"), encoder="none")
    np.save(tmp_path / "flat.npy", np.ones((40, 3)))
    with pytest.raises(ValueError, match="every vector .* is the same"):
        tune_job(workers=1, dataset=str(tmp_path / "flat.npy"), encoder="none")
    assert not (tmp_path / study.DEFAULT_JOURNAL).exists()


@pytest.mark.slow
def test_mlflow_run_tune_on_a_small_data_set(blob_file, run_cli, project_root):
    done = run_cli("mlflow", "run", str(project_root), "-e", "tune", "-P", f"dataset={blob_file}",
                   "-P", "encoder=none", "-P", "n_trials=4", "-P", "clusterers=kmeans,hdbscan",
                   "-P", f"storage={blob_file.parent / 'study.log'}", "--env-manager", "local", cwd=blob_file.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best_silhouette_umap" in done.stdout
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"],
                              filter_string="tags.`mlflow.project.entryPoint` = 'tune'")
    parent = runs.iloc[-1]
    assert parent["metrics.n_trials_complete"] == 4 and parent["params.encoder"] == "none"
    assert len(child_runs(parent["run_id"])) == 4
    failing = run_cli("mlflow", "run", str(project_root), "-e", "tune", "-P", f"dataset={blob_file}",
                      "-P", "encoder=none", "-P", "n_trials=0", "--env-manager", "local", cwd=blob_file.parent)
    assert failing.returncode != 0 and "`n_trials` must be an int >= 1" in failing.stderr


def test_a_stale_trial_is_failed_its_run_killed_and_it_is_retried(tmp_path, wait_for):
    """What a killed worker leaves behind: a RUNNING trial whose heartbeat stopped."""
    storage = study.resolve_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=1)
    stale = optuna.create_study(study_name="stale", storage=storage)
    client = mlflow.tracking.MlflowClient()
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    trial = stale.ask()
    trial.suggest_int("clusterer.n_clusters", 2, 5)
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    storage.record_heartbeat(trial._trial_id)

    def failed_once_stale():  # stale once its heartbeat is older than the grace period: ask until it is
        optuna.storages.fail_stale_trials(stale)
        return stale.trials[0].state != optuna.trial.TrialState.RUNNING

    wait_for(failed_once_stale, timeout=30, what="the trial to go stale")
    states = [t.state for t in stale.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert states[1] == optuna.trial.TrialState.WAITING and stale.trials[1].params == stale.trials[0].params  # retry
    killed = client.get_run(run.info.run_id)
    assert killed.info.status == "KILLED" and "heartbeat" in killed.data.tags["error"]


@pytest.mark.slow
def test_two_worker_processes_run_one_study_under_one_parent_run(tmp_path, monkeypatch):
    """The calling process and one child take trials from one count: exactly ``n_trials``, each once,
    some in each process (trials of ~0.5 s: the child is ready after a few seconds of imports)."""
    monkeypatch.chdir(tmp_path)
    X, y = make_blobs(n_samples=1500, centers=4, n_features=20, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    target = 16
    result = tune_job(dataset=str(tmp_path / "blobs.npz"), encoder="none", n_trials=target, clusterers=FAST, seed=5,
                      workers=2, study_name="two-workers")
    trials = result.study.trials
    assert len(trials) == target and sorted(t.number for t in trials) == list(range(target))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])  # side by side
    # The calling process marks its trials with its run; a child has no run of its own.
    here = [t.number for t in trials if t.user_attrs.get("worker_run_id") == result.parent_run_id]
    assert 0 < len(here) < target, here
    children = child_runs(result.parent_run_id)
    assert len(children) == target and set(children["status"]) == {"FINISHED"}
    assert sorted(children["tags.optuna_trial_number"].astype(int)) == list(range(target))
    study_runs = mlflow.search_runs(search_all_experiments=True,
                                    filter_string="tags.optuna_study_name = 'two-workers'")
    assert set(study_runs["run_id"]) - set(children["run_id"]) == {result.parent_run_id}  # no run per worker
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.metrics["n_trials_complete"] == target and parent.data.params["workers"] == "2"


@pytest.mark.slow
def test_mlflow_run_tune_with_two_workers_in_a_fresh_directory(tmp_path, run_cli, project_root, monkeypatch):
    """No tracking store, no journal, no cache: the parent creates them once, then starts its workers.
    `mlflow run` runs the command in the project's folder; the default journal still lands beside the
    default tracking store, in the user's folder."""
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    env = {"SELECTOR_CACHE_DIR": str(tmp_path / "cache")}
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("SELECTOR_JOURNAL")
    journals_before = set(project_root.glob("optuna_journal.log*"))
    done = run_cli("mlflow", "run", str(project_root), "-e", "tune", "-P", f"dataset={tmp_path / 'blobs.npz'}",
                   "-P", "encoder=none", "-P", "n_trials=6", "-P", "workers=2", "-P", "clusterers=kmeans,hdbscan",
                   "--env-manager", "local", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 workers" in done.stderr, done.stderr[-2000:]
    assert "n_trials_complete        6" in done.stdout, done.stdout
    store = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = store.search_runs([store.get_experiment_by_name("Default").experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["optuna_trial_number"]) for r in runs if r not in parent) == list(range(6))
    assert (tmp_path / "optuna_journal.log").is_file()  # beside ./mlflow.db, not in the project's folder
    assert set(project_root.glob("optuna_journal.log*")) == journals_before


@pytest.mark.slow
def test_reproducible_batches_give_the_same_trials_twice_with_two_workers(blob_file):
    """``reproducible=true``: two seeded runs with two workers give the same trials (parameters,
    values, order), the same choice and its labels; every trial is logged as a nested run."""
    runs = [tune_job(workers=2, reproducible=True, dataset=str(blob_file), encoder="none", n_trials=6, seed=4,
                     clusterers="kmeans,hdbscan,gmm", study_name=f"twice-{i}") for i in range(2)]
    trials = [[(t.number, t.state.name, t.value, t.params) for t in run.study.trials] for run in runs]
    assert trials[0] == trials[1] and len(trials[0]) == 6
    assert runs[0].study.best_trial.params == runs[1].study.best_trial.params
    assert (runs[0].labels == runs[1].labels).all()
    for run in runs:
        children = child_runs(run.parent_run_id)
        assert len(children) == 6 and set(children["status"]) == {"FINISHED"}
        assert mlflow.get_run(run.parent_run_id).data.params["reproducible"] == "True"


@pytest.mark.slow
def test_a_close_call_settled_by_separation_is_the_choice_wherever_the_choice_is_read(blob_file, monkeypatch):
    """The best trial's clusters fail the dip test and the next alternative's pass: the summary, its tags,
    clusters.csv and alternatives.csv all describe that alternative, and the best trial is listed after it."""
    from selector.stages import separation as sep
    from selector.study import alternatives as alts

    tested = []

    def dip(space, labels, seed, alpha=sep.ALPHA):
        tested.append(len(set(np.asarray(labels).tolist()) - {-1}))
        return sep.Separation(pairs=1, apart=int(len(tested) > 1))  # the first tested, the best, is not apart

    settle = alts.settle_choice
    monkeypatch.setattr(sep, "separation", dip)
    monkeypatch.setattr(alts, "settle_choice", lambda study_, ctx, within=alts.CLOSE: settle(study_, ctx, within=10.0))
    result = tune_job(workers=1, dataset=str(blob_file), encoder="none", n_trials=8, clusterers=FAST, seed=1)
    found = alts.alternatives(result.study)
    chosen, best = found[0].trial, result.study.best_trial
    assert len(tested) == 2 and chosen.number != best.number and found[1].trial.number == best.number
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.tags["chosen_by"] == "separation" and int(parent.data.tags["best_trial_number"]) == chosen.number
    assert parent.data.tags["best_trial_run_id"] == chosen.user_attrs["mlflow_run_id"]
    assert parent.data.metrics["best_objective_value"] == chosen.value < best.value
    assert parent.data.metrics["choice_margin"] < 0 and parent.data.metrics["best_ami"] == chosen.user_attrs["ami"]
    clusters = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=result.parent_run_id, artifact_path="clusters.csv"))
    assert clusters.loc[clusters["cluster"] != -1, "cluster"].nunique() == chosen.user_attrs["n_clusters"]
    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=result.parent_run_id, artifact_path="alternatives.csv"))
    assert table["trial"].tolist()[:2] == [chosen.number, best.number] and table["chosen"].tolist()[0]
    page = open(mlflow.artifacts.download_artifacts(run_id=result.parent_run_id, artifact_path="report.html")).read()
    assert f"Best pipeline (trial {chosen.number}" in page and f"the dip test: trial {best.number} scores higher" in page
