"""Faults a user meets: a stopped job (SIGTERM, Ctrl-C), a broken or unwritable cache, two `register`
jobs at once, and a study whose journal is shared with another tracking store.

The ones with real processes are ``slow``; PostgreSQL and tracking-server restarts mid-study are in
``tests/test_parallel.py``, beside the other PostgreSQL tests (docs/operations.md, "Faults")."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from selector.stages.data import load_dataset
from selector.stages.embedding import embed
from selector.stages.reduction import ReductionCache

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- caches
def _flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_embedding_cache_file_is_recomputed_not_read(digit_folder, cache_dir, damage, caplog):
    data = load_dataset(digit_folder)
    first = embed(data, "raw", progress=False)
    assert not first.cache_hit and first.cache_path.is_file()
    if damage == "truncate":
        first.cache_path.write_bytes(first.cache_path.read_bytes()[: first.cache_path.stat().st_size // 2])
    else:  # same length, one byte changed: still a readable archive, with wrong numbers in it
        _flip_a_byte(first.cache_path)
    again = embed(data, "raw", progress=False)
    assert not again.cache_hit and np.array_equal(again.vectors, first.vectors)
    assert "recomputing" in caplog.text
    assert embed(data, "raw", progress=False).cache_hit  # the rewritten file is good


def test_a_damaged_reduction_cache_file_is_recomputed_not_read(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    params = {"name": "pca", "scaling": "zscore", "n_components": 2}
    first = ReductionCache(tmp_path, "data").reduce(X, params, 0)
    (stored,) = tmp_path.glob("*.npy")
    _flip_a_byte(stored)
    cache = ReductionCache(tmp_path, "data")
    assert np.array_equal(cache.reduce(X, params, 0), first) and cache.fits == 1


def test_an_unwritable_cache_folder_costs_the_cache_not_the_job(digit_folder, tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SELECTOR_CACHE_DIR", str(blocked))
    result = embed(load_dataset(digit_folder), "raw", progress=False)
    assert len(result.vectors) == 30 and "going on without caching" in caplog.text
    cache = ReductionCache(blocked / "reductions", "data")
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    reduced = cache.reduce(X, {"name": "pca", "scaling": "none", "n_components": 2}, 0)
    assert reduced.shape == (40, 2) and "in memory" in caplog.text


def test_a_full_disk_costs_the_cache_not_the_job(digit_folder, monkeypatch, caplog):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    result = embed(load_dataset(digit_folder), "raw", progress=False)
    assert len(result.vectors) == 30 and "No space left on device" in caplog.text
    assert not list(result.cache_path.parent.glob("*.npz"))  # nothing half-written left behind


# --------------------------------------------------------------------------- SIGTERM and Ctrl-C
@pytest.fixture
def blobs_csv(tmp_path):
    X, y = make_blobs(n_samples=90, centers=3, n_features=6, cluster_std=0.7, random_state=3)
    path = tmp_path / "blobs.csv"
    pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]).assign(label=y).to_csv(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_tune_leaves_nothing_running_and_the_study_resumes(stop, blobs_csv, tmp_path, journal,
                                                                      wait_for_text):
    name = f"stopped-{stop.name}"  # the session's tracking store is shared: one study name per case
    args = ["--dataset", str(blobs_csv), "--encoder", "none", "--clusterers", "kmeans", "--study_name", name,
            "--workers", "1"]
    log = tmp_path / "tune.log"
    process = subprocess.Popen([sys.executable, os.path.join(PROJECT, "tests", "hanging_worker.py"), "3", *args,
                                "--n_trials", "4"], cwd=tmp_path, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for_text(log, "HANGING", process)  # in its third trial
    process.send_signal(stop)
    assert process.wait(timeout=120) == 130, log.read_text()[-3000:]
    assert "interrupted" in log.read_text()

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.optuna_study_name = '{name}'")
    assert "RUNNING" not in set(runs["status"])
    stopped = runs[runs["tags.optuna_trial_number"] == "2"]
    assert list(stopped["status"]) == ["KILLED"] and "interrupted" in stopped["tags.error"].iloc[0]
    parent = mlflow.get_run(trials[0].user_attrs["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
    assert mlflow.get_run(parent).info.status == "KILLED"

    done = subprocess.run([sys.executable, os.path.join(PROJECT, "entrypoints", "tune.py"), *args, "--n_trials", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.optuna_study_name = '{name}'")
    assert "RUNNING" not in set(runs["status"])
    assert (runs["tags.mlflow.parentRunId"] == parent).sum() == 5  # resumed under the same parent run
    assert mlflow.get_run(parent).data.metrics["n_trials_complete"] == 4


# --------------------------------------------------------------------------- two registers at once
REGISTER = textwrap.dedent("""
    import contextlib, fcntl, pathlib, sys, time
    import mlflow
    from registry import promote

    uri, score, role, folder, lock = sys.argv[1], float(sys.argv[2]), sys.argv[3], pathlib.Path(sys.argv[4]), sys.argv[5]
    if lock == "off":
        promote.promotion_lock = contextlib.nullcontext

    def wait(*names, seconds=240):  # a barrier: poll for the other process's file, with a deadline
        deadline = time.monotonic() + seconds
        while not any((folder / name).exists() for name in names):
            assert time.monotonic() < deadline, f"timed out waiting for {names}"
            time.sleep(0.05)

    if role == "worse":  # reads the (empty) holder, then holds on until the better one is done or blocked
        read = mlflow.tracking.MlflowClient.get_model_version_by_alias

        def read_then_hold(self, *args, **kwargs):
            try:
                return read(self, *args, **kwargs)
            finally:
                (folder / "worse-read").touch()
                wait("better-done", "better-blocked")

        mlflow.tracking.MlflowClient.get_model_version_by_alias = read_then_hold
    else:
        wait("worse-read")
        with open(mlflow.get_tracking_uri()[len("sqlite:///"):] + ".promote.lock", "a") as handle:
            try:  # is the worse one holding the promotion lock?
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                (folder / "better-blocked").touch()
    result = promote.register_and_promote(uri, f"raced-{lock}", "champion",
                                          {"dataset": "d", "objective": "o", "objective_value": score})
    if role == "better":
        (folder / "better-done").touch()
    print("VERSION", result.version, result.promoted, flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("lock, holder_score", [("on", 0.9), ("off", 0.2)])
def test_two_registers_at_once_leave_the_alias_on_the_better_version(tmp_path, lock, holder_score):
    """The worse version reads the empty holder first and holds on, between reading the holder and
    moving the alias, until the better one is done or blocked (barrier files, not sleeps). With the
    promotion lock the better one is blocked, then compares against the worse one and wins; with the
    lock off (the second case, to show the test can fail) it finishes first and the worse one moves the
    alias last, over it."""
    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: pd.DataFrame, params=None):
            return model_input

    with mlflow.start_run():
        uri = mlflow.pyfunc.log_model(name="model", python_model=Constant()).model_uri
    worse = subprocess.Popen([sys.executable, "-c", REGISTER, uri, "0.2", "worse", str(tmp_path), lock], cwd=PROJECT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    better = subprocess.Popen([sys.executable, "-c", REGISTER, uri, "0.9", "better", str(tmp_path), lock],
                              cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=300) for p in (better, worse)]
    assert [better.returncode, worse.returncode] == [0, 0], [o[1][-2000:] for o in outputs]
    client = mlflow.tracking.MlflowClient()
    assert len(client.search_model_versions(f"name = 'raced-{lock}'")) == 2
    holder = client.get_model_version_by_alias(f"raced-{lock}", "champion")
    assert float(holder.tags["objective_value"]) == holder_score


# --------------------------------------------------------------------------- a study and its tracking store
@pytest.mark.slow
def test_a_study_stays_with_its_tracking_store(blobs_csv, tmp_path, monkeypatch):
    """Issue 15's case: `tune` twice on the same data in one folder against two tracking stores."""
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SELECTOR_JOURNAL")
    # Stores are switched through MLFLOW_TRACKING_URI, which MLflow reads at each call; never
    # mlflow.set_tracking_uri, which would outlive this test and hide the next tests' stores.
    stores = {}
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / name / 'mlflow.db'}")
        stores[name] = tune_job(dataset=str(blobs_csv), encoder="none", n_trials=2, clusterers="kmeans", workers=1)
        assert (tmp_path / name / "optuna_journal.log").is_file()  # beside its store
    assert stores["first"].study.study_name == stores["second"].study.study_name  # same data, same default name
    assert len(stores["second"].study.trials) == 2  # a study of its own, not the first one resumed
    register_job(stores["second"].parent_run_id, model_name="store-check")

    # One journal shared by both stores: refused, saying what to do.
    with pytest.raises(ValueError, match="belongs to the tracking store .*first.* MLFLOW_TRACKING_URI="):
        tune_job(dataset=str(blobs_csv), encoder="none", n_trials=1, clusterers="kmeans", workers=1,
                 storage=str(tmp_path / "first" / "optuna_journal.log"))
    # A study run of another store is not followed into this one.
    with pytest.raises(ValueError, match="is not a run in"):
        register_job(stores["first"].parent_run_id, model_name="store-check")
