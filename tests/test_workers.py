"""The pieces ``tune``'s worker processes share (``selector.study.workers``)."""

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from selector.study.workers import Tickets, cores_share


def _take_all(path, taken):
    tickets = Tickets(path)
    mine = 0
    while tickets.take():
        mine += 1
    taken.put(mine)


def test_processes_taking_tickets_together_take_each_exactly_once(tmp_path):
    total, processes = 500, 4
    Tickets(tmp_path / "tickets", total)
    taken = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_take_all, args=(tmp_path / "tickets", taken)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [taken.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(counts) == total
    assert not Tickets(tmp_path / "tickets").take()  # none left


def test_no_tickets_means_no_trial(tmp_path):
    assert not Tickets(tmp_path / "tickets", 0).take()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one numba thread here: nothing to limit")
def test_a_cores_share_limits_numba_and_gives_the_threads_back():
    before = numba.get_num_threads()
    with cores_share(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


@pytest.mark.slow
def test_a_refused_request_stops_the_workers_it_started_and_writes_nothing(tmp_path, project_root):
    """The children start before the request is checked (to import meanwhile): a refused request must
    still end at once with its one line, no tracking store or journal written, no child left behind."""
    work, scratch = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SELECTOR_JOURNAL")}
    env.update(TMPDIR=str(scratch), SELECTOR_CACHE_DIR=str(tmp_path / "cache"))  # the pool's folder goes in TMPDIR
    done = subprocess.run([sys.executable, str(project_root / "entrypoints" / "tune.py"), "--dataset", "no-such-set",
                           "--workers", "2", "--n_trials", "4"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no-such-set" in done.stderr
    assert list(work.iterdir()) == []  # no mlflow.db, no journal
    assert list(scratch.iterdir()) == []  # the pool's folder is gone
    left = [p for p in Path("/proc").glob("[0-9]*") if str(scratch) in _cmdline(p)]
    assert not left, "a worker outlived the command"


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # it ended while we looked
        return ""


# A child of ``WorkerPool`` for the tests below: it joins the study named in the spec (a journal file)
# and takes trials of ~0.2 s from the command's counter, within the command's timeout — or fails at once.
CHILD = r"""
import sys, time
import optuna
from selector.study.workers import SPEC_FILE, TICKETS_FILE, Tickets, take_trials, wait_for

folder = sys.argv[-2]
spec = wait_for(folder, SPEC_FILE)
if spec.get("fail"):
    print("the child's data set could not be read", flush=True)
    sys.exit(3)
storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(spec["journal"]))
study = optuna.load_study(study_name="pool", storage=storage)
take_trials(study, lambda t: time.sleep(0.2) or t.suggest_float("x", 0, 1), Tickets(f"{folder}/{TICKETS_FILE}"),
            spec["timeout"])
"""


def _pool_study(tmp_path):
    import optuna

    journal = str(tmp_path / "journal.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    return optuna.create_study(study_name="pool", storage=storage), journal


def test_a_child_that_fails_fails_the_command_with_the_end_of_its_log(tmp_path):
    from selector.study.workers import WorkerPool

    study, journal = _pool_study(tmp_path)
    with WorkerPool([sys.executable, "-c", CHILD], n_trials=4, workers=2) as pool:
        pool.publish({"journal": journal, "timeout": 0, "fail": True})
        with pytest.raises(RuntimeError, match=r"worker 1 exited with 3:\n.*could not be read"):
            pool.run(study, lambda t: t.suggest_float("x", 0, 1))
    assert len(study.trials) == 4  # the calling process finished the command's trials first


def test_a_timeout_ends_every_worker_near_it_and_no_trial_is_left_running(tmp_path):
    import time

    import optuna

    from selector.study.workers import WorkerPool

    study, journal = _pool_study(tmp_path)
    started = time.monotonic()
    with WorkerPool([sys.executable, "-c", CHILD], n_trials=500, workers=2) as pool:
        pool.publish({"journal": journal, "timeout": 3.0})
        pool.run(study, lambda t: time.sleep(0.2) or t.suggest_float("x", 0, 1), timeout=3.0)
    elapsed = time.monotonic() - started
    states = [t.state for t in study.trials]
    assert 0 < len(states) < 500 and all(s == optuna.trial.TrialState.COMPLETE for s in states)
    assert elapsed < 3.0 + 15  # the timeout, the child's start-up and one last trial: not 500 × 0.2 s
