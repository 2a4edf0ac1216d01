"""Several `tune` workers on one study through PostgreSQL (Optuna RDB storage, MLflow on PostgreSQL).

Each test makes fresh databases of its own and drops them after; without a PostgreSQL server on
127.0.0.1:5432 the tests are skipped with the reason.
"""

import os
import subprocess
import sys
import uuid

import mlflow
import numpy as np
import optuna
import pytest
from sklearn.datasets import make_blobs

from conftest import PROJECT_ROOT

PG = "postgresql://postgres@127.0.0.1:5432"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _admin():
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(f"{PG}/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({exc})")


@pytest.fixture
def databases():
    """Two fresh databases: one for Optuna, one for MLflow (both use an `alembic_version` table)."""
    admin = _admin()
    names = [f"selector_{kind}_{uuid.uuid4().hex[:10]}" for kind in ("optuna", "mlflow")]
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"optuna": f"{PG}/{names[0]}", "mlflow": f"{PG}/{names[1]}"}
    finally:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_three_workers_share_one_study_and_one_parent_run(databases, tmp_path, monkeypatch):
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    env = {**os.environ, "MLFLOW_TRACKING_URI": databases["mlflow"], "SELECTOR_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, str(PROJECT_ROOT / "entrypoints" / "tune.py"), "--dataset", str(tmp_path / "blobs.npz"),
               "--encoder", "none", "--clusterers", "kmeans,hdbscan", "--n_trials", "8",
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

    from selector.workflow import register_job

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SELECTOR_CACHE_DIR", str(tmp_path / "cache"))
    registration = register_job(parent, model_name="parallel-test")
    assert registration.promoted
