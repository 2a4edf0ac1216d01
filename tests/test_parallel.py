"""Several `tune` workers on one study through PostgreSQL (Optuna RDB storage, MLflow on PostgreSQL).

Each test makes fresh databases of its own and drops them after; without a PostgreSQL server on
127.0.0.1:5432 the tests are skipped with the reason.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import mlflow
import numpy as np
import optuna
import pytest
import stack  # benchmarks/stack.py, the operations harness (on pytest's pythonpath)
from sklearn.datasets import make_blobs

from selector.study.tracking import mask_url


PG = "postgresql://postgres@127.0.0.1:5432"
SECRET = "hunter2-not-logged"  # trust auth ignores it; it must still never show up anywhere
WORKER_PASSWORD = "worker-" + uuid.uuid4().hex

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _require_postgres():
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(f"{PG}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({exc})")


@contextlib.contextmanager
def fresh_databases(*kinds):
    """Fresh databases, one per kind (Optuna and MLflow both keep an `alembic_version` table), dropped after."""
    _require_postgres()
    urls = {}
    try:
        for kind in kinds:
            urls[kind] = stack.create_database(PG, f"selector_{kind}")
        yield urls
    finally:
        for url in urls.values():
            stack.drop_database(url)


@pytest.fixture
def databases():
    with fresh_databases("optuna", "mlflow") as urls:
        yield urls


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """`mlflow server --app-name basic-auth` on PostgreSQL on a free loopback port, with one worker user."""
    with fresh_databases("mlflow", "auth") as urls:
        admin_password = "admin-" + uuid.uuid4().hex
        with stack.tracking_server(urls["mlflow"], urls["auth"], tmp_path_factory.mktemp("server"),
                                   admin_password) as url:
            stack.add_user(url, admin_password, "worker", WORKER_PASSWORD, "kill-test")
            yield {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": "worker",
                   "MLFLOW_TRACKING_PASSWORD": WORKER_PASSWORD, "MLFLOW_EXPERIMENT_NAME": "kill-test"}


def test_three_workers_share_one_study_and_one_parent_run(databases, tmp_path, monkeypatch, project_root):
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    env = {**os.environ, "MLFLOW_TRACKING_URI": databases["mlflow"], "SELECTOR_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, str(project_root / "entrypoints" / "tune.py"), "--dataset", str(tmp_path / "blobs.npz"),
               "--encoder", "none", "--clusterers", "kmeans,hdbscan", "--n_trials", "8", "--workers", "1",
               "--study_name", "shared", "--storage", databases["optuna"]]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(3)]
    outputs = [worker.communicate(timeout=900)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)

    study = optuna.load_study(study_name="shared", storage=databases["optuna"])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 24
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    parent = study.user_attrs["mlflow_parent_run_id"]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", databases["mlflow"])
    runs = mlflow.search_runs(search_all_experiments=True)
    children = runs[runs["tags.mlflow.parentRunId"] == parent]
    assert len(children) == 24 and set(children["status"]) == {"FINISHED"}
    assert sorted(children["tags.optuna_trial_number"].astype(int)) == sorted(t.number for t in complete)
    workers_runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(workers_runs) == 3 and set(workers_runs["tags.study_parent_run_id"]) == {parent}
    assert mlflow.get_run(parent).data.metrics["n_trials_complete"] == 24

    from selector.jobs.register import register_job

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SELECTOR_CACHE_DIR", str(tmp_path / "cache"))
    registration = register_job(parent, model_name="parallel-test")
    assert registration.promoted


def test_the_tracking_server_refuses_anonymous_and_wrong_credentials(auth_server, monkeypatch):
    from mlflow.exceptions import MlflowException

    url = auth_server["MLFLOW_TRACKING_URI"]
    for username, password in ((None, None), ("worker", "wrong-password")):
        for name, value in (("MLFLOW_TRACKING_USERNAME", username), ("MLFLOW_TRACKING_PASSWORD", password)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        with pytest.raises(MlflowException, match="401|not authenticated|Unauthorized"):
            mlflow.tracking.MlflowClient(tracking_uri=url).search_experiments()
        with pytest.raises(MlflowException, match="401|not authenticated|Unauthorized"):
            mlflow.tracking.MlflowClient(tracking_uri=url).create_experiment(f"anonymous-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "worker")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", WORKER_PASSWORD)
    names = [e.name for e in mlflow.tracking.MlflowClient(tracking_uri=url).search_experiments()]
    assert "kill-test" in names


@pytest.mark.parametrize("tracking", ["postgresql", "server"])
def test_a_killed_worker_is_replaced_and_the_study_reaches_its_target(tracking, databases, tmp_path, request,
                                                                     monkeypatch, wait_for, wait_for_text,
                                                                     project_root):
    """SIGKILL a real worker in the middle of its third trial; a new worker started after the grace
    period fails the orphan, ends its MLflow run KILLED, retries it and brings the study to its target."""
    target = 6
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    if tracking == "server":
        tracking_env = request.getfixturevalue("auth_server")
    else:  # the password in this URL must be masked too (trust auth ignores it)
        tracking_env = {"MLFLOW_TRACKING_URI": databases["mlflow"].replace("postgres@", f"postgres:{SECRET}@")}
    env = {**os.environ, **tracking_env, "SELECTOR_CACHE_DIR": str(tmp_path / "cache"),
           "SELECTOR_HEARTBEAT_SECONDS": "1", "SELECTOR_GRACE_SECONDS": "3"}
    storage = databases["optuna"].replace("postgres@", f"postgres:{SECRET}@")
    study_name = f"killed-{tracking}-{uuid.uuid4().hex[:6]}"
    arguments = ["--dataset", str(tmp_path / "blobs.npz"), "--encoder", "none", "--clusterers", "kmeans,hdbscan",
                 "--study_name", study_name, "--storage", storage, "--workers", "1"]

    first_log = tmp_path / "first.log"
    first = subprocess.Popen([sys.executable, str(project_root / "tests" / "hanging_worker.py"), "3",
                              *arguments, "--n_trials", "4"], cwd=tmp_path, env=env,
                             stdout=open(first_log, "w"), stderr=subprocess.STDOUT)
    wait_for_text(first_log, "HANGING", first)
    study = optuna.load_study(study_name=study_name, storage=databases["optuna"])
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1, [t.state for t in study.trials]
    killed = running[0]
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert done == 2

    # Start the replacement once the orphan is stale (its heartbeat older than the 3 s grace period),
    # asked of the storage itself rather than guessed with a sleep.
    watcher = optuna.storages.RDBStorage(databases["optuna"], heartbeat_interval=1, grace_period=3)
    wait_for(lambda: killed._trial_id in watcher._get_stale_trial_ids(study._study_id), timeout=120,
             what="the killed worker's trial to go stale")
    second = subprocess.run([sys.executable, str(project_root / "entrypoints" / "tune.py"), *arguments,
                             "--n_trials", str(target - done)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]

    trials = optuna.load_study(study_name=study_name, storage=databases["optuna"]).trials
    states = {t.number: t.state for t in trials}
    assert states[killed.number] == optuna.trial.TrialState.FAIL
    assert sum(s == optuna.trial.TrialState.COMPLETE for s in states.values()) == target
    assert optuna.trial.TrialState.RUNNING not in states.values()
    retried = [t for t in trials if optuna.storages.RetryFailedTrialCallback.retried_trial_number(t) == killed.number]
    assert retried and retried[0].state == optuna.trial.TrialState.COMPLETE and retried[0].params == killed.params

    for name, value in tracking_env.items():
        monkeypatch.setenv(name, value)
    client = mlflow.tracking.MlflowClient()
    orphan = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert orphan.info.status == "KILLED" and "no Optuna heartbeat" in orphan.data.tags["error"]
    runs = mlflow.search_runs(search_all_experiments=True)
    assert "RUNNING" not in set(runs["status"]), runs[["tags.mlflow.runName", "status"]]
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials_complete"] == target
    children = runs[runs["tags.mlflow.parentRunId"] == parent_id]
    assert sorted(children["status"]) == ["FINISHED"] * target + ["KILLED"]

    logged = [str(v) for _, row in runs.iterrows() for k, v in row.items() if k.startswith(("params.", "tags."))]
    shown = [first_log.read_text(), second.stdout, second.stderr, *logged]
    assert not [text for text in shown if SECRET in text]
    assert any(mask_url(storage) in text for text in logged)


def test_workers_share_the_local_defaults_without_any_server(tmp_path, monkeypatch, project_root):
    """No PostgreSQL, no server: the default journal file for Optuna and SQLite for MLflow, 3 processes."""
    workers = 3
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    env = {**os.environ, "SELECTOR_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI")  # the project's default: ./mlflow.db in the working directory,
    env.pop("SELECTOR_JOURNAL")  # and the journal beside it
    command = [sys.executable, str(project_root / "entrypoints" / "tune.py"), "--dataset", str(tmp_path / "blobs.npz"),
               "--encoder", "none", "--clusterers", "kmeans,hdbscan", "--n_trials", "6", "--study_name", "local",
               "--workers", "1"]
    processes = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(workers)]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [p.returncode for p in processes] == [0] * workers, "\n".join(o[-2000:] for o in outputs)

    from selector.study.session import resolve_storage

    monkeypatch.chdir(tmp_path)
    study = optuna.load_study(study_name="local", storage=resolve_storage(""))
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 6 * workers
    assert sorted(t.number for t in study.trials) == list(range(6 * workers))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert (runs["tags.mlflow.parentRunId"] == parent).sum() == 6 * workers
    assert set(runs["status"]) == {"FINISHED"}


# --------------------------------------------------------------------------- restarts mid-study
def _restart_postgresql() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not shutil.which("pg_ctlcluster") or not versions:
        pytest.skip("PostgreSQL is not managed by pg_ctlcluster here: cannot restart it")
    done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        pytest.skip(f"cannot restart PostgreSQL: {done.stderr.strip()[-300:]}")


def _complete(storage: str, study_name: str) -> int:
    """COMPLETE trials of the study, or 0 while the study or the database is not there."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except Exception:
        return 0
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def _nothing_lost(storage: str, study_name: str, tracking_uri: str, target: int) -> None:
    """The study reached its target with every trial once, and no MLflow run is left RUNNING."""
    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == target, [t.state for t in trials]
    assert optuna.trial.TrialState.RUNNING not in {t.state for t in trials}
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    numbers = [int(r.data.tags["optuna_trial_number"]) for r in runs
               if r.data.tags.get("optuna_study_name") == study_name and "optuna_trial_number" in r.data.tags]
    assert sorted(numbers) == sorted(t.number for t in trials)  # one trial run per trial, none twice


@pytest.mark.parametrize("restarted", ["postgresql", "tracking server"])
def test_a_restart_mid_study_is_waited_out_and_nothing_is_lost(restarted, databases, tmp_path, wait_for,
                                                               project_root):
    """Two workers (one command) on PostgreSQL; (a) PostgreSQL itself, or (b) the tracking server in
    front of MLflow's database, restarts after a few trials. The workers wait and retry; the study
    reaches its target with no trial lost or duplicated and no run left RUNNING."""
    # these trials take ~0.1 s each: enough of them that the restart lands mid-study even when other
    # work slows the polling here (60 were once all done before it saw three)
    target = 200
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    study_name = f"restart-{restarted.split()[0]}-{uuid.uuid4().hex[:6]}"
    command = [sys.executable, str(project_root / "entrypoints" / "tune.py"), "--dataset", str(tmp_path / "blobs.npz"),
               "--encoder", "none", "--clusterers", "kmeans,hdbscan", "--study_name", study_name,
               "--storage", databases["optuna"], "--workers", "2", "--n_trials", str(target)]
    env = {**os.environ, "SELECTOR_CACHE_DIR": str(tmp_path / "cache"), "SELECTOR_HEARTBEAT_SECONDS": "1",
           "SELECTOR_GRACE_SECONDS": "60"}
    log = tmp_path / "tune.log"
    with contextlib.ExitStack() as stack_:
        if restarted == "tracking server":
            auth = stack_.enter_context(fresh_databases("auth"))
            port, password = stack.free_port(), "admin-" + uuid.uuid4().hex
            server = stack_.enter_context(contextlib.ExitStack())
            url = server.enter_context(stack.tracking_server(databases["mlflow"], auth["auth"], tmp_path / "server",
                                                             password, port=port))
            env.update(MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
        else:
            url = databases["mlflow"]
            env["MLFLOW_TRACKING_URI"] = url
        tune = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        wait_for(lambda: _complete(databases["optuna"], study_name) >= 3 or tune.poll() is not None, timeout=300,
                 what="three complete trials")
        assert tune.poll() is None, log.read_text()[-3000:]
        assert _complete(databases["optuna"], study_name) < target, "the study ended before the restart"
        if restarted == "tracking server":
            server.close()  # stopped mid-study ...
            time.sleep(2)
            server.enter_context(stack.tracking_server(databases["mlflow"], auth["auth"], tmp_path / "server",
                                                       password, port=port))  # ... and back on the same port
        else:
            _restart_postgresql()
        assert tune.wait(timeout=600) == 0, log.read_text()[-3000:]
        if restarted == "tracking server":
            os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
            try:
                _nothing_lost(databases["optuna"], study_name, url, target)
            finally:
                del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
        else:
            _nothing_lost(databases["optuna"], study_name, url, target)
