"""Several processes of one command on one study: the calling process and ``workers − 1`` children.

The children start first, before the caller checks the request, so that their imports overlap the
caller's checks, embedding and set-up; nothing is written until they are told. They are told twice:
``JOB_FILE`` once the request is checked and the data embedded (``WorkerPool.assign``: data, encoder,
storage, objective…; the first child then creates the tracking store's tables while the caller builds
the evaluation space), and ``SPEC_FILE`` once the study and its parent run exist
(``WorkerPool.publish``). Then every process, the caller included, takes trials one at a time from
one counter (``Tickets``) until the command's ``n_trials`` are taken: a process whose trials run fast
takes more, so none idles while another still has a queue, and the study gets exactly ``n_trials``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import optuna

from selector.files import write_atomic
from selector.machine import available_cores

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"  # the checked request, once the data are embedded
SPEC_FILE = "study.json"  # the study's MLflow experiment and parent run, once they exist
TICKETS_FILE = "tickets"
JOURNAL_FILE = "study.journal"  # an untracked study's storage, shared by its workers and gone with them
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class Tickets:
    """How many of ``total`` trials the processes of one command have taken: an integer in a file,
    read and written under ``flock``, so two processes never take the same one."""

    def __init__(self, path: Path, total: int | None = None):
        self.path = Path(path)
        if total is not None:
            self.path.write_text(f"0 {int(total)}")

    def take(self) -> bool:
        """One trial to run, or ``False`` when all are taken."""
        from selector.locks import file_lock

        with file_lock(self.path, "r+") as handle:
            taken, total = (int(part) for part in handle.read().split())
            if taken >= total:
                return False
            handle.seek(0)
            handle.write(f"{taken + 1} {total}")
            handle.truncate()
            return True


def take_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], tickets: Tickets,
                timeout: float = 0.0, after_each: Callable[[], None] | None = None) -> None:
    """Run one trial per ticket until none is left or ``timeout`` seconds (0 = none) have passed; a
    trial that raises fails alone."""
    from selector.study.session import optuna_experimental

    started = time.monotonic()
    with optuna_experimental("fail_stale_trials", "heartbeat"):
        while (not timeout or time.monotonic() - started < timeout) and tickets.take():
            study.optimize(objective, n_trials=1, catch=(Exception,))
            if after_each is not None:
                after_each()


@contextlib.contextmanager
def cores_share(threads: int):
    """BLAS, OpenMP and numba limited to ``threads`` in this process (children get it through their
    environment): one process per core, not every process on every core."""
    from threadpoolctl import threadpool_limits

    try:
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba comes with umap-learn
        numba = None
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if numba is not None:
            numba.set_num_threads(before)


class WorkerPool:
    """The calling process and ``workers − 1`` child processes on one study, as a context manager.

    Entering starts the children (``command + [folder, index]``); ``assign(job)`` gives them the
    checked request, ``publish(spec)`` the study to join; ``run(study, objective)`` takes this
    process's trials under one progress bar for the whole study, then waits for the children and
    raises, with the end of its log, for a child that failed. ``guard()`` around the work between them stops the children if it raises; leaving the
    pool always does."""

    def __init__(self, command: list[str], n_trials: int, workers: int):
        self.command, self.n_trials, self.workers = command, int(n_trials), int(workers)
        self.threads = max(1, available_cores() // self.workers)

    def __enter__(self) -> "WorkerPool":
        self._folder = tempfile.TemporaryDirectory(prefix="selector-workers-")
        self.folder = Path(self._folder.name)
        self.tickets = Tickets(self.folder / TICKETS_FILE, self.n_trials)
        # A child must not resume this process's run (`mlflow run` exports it): it logs trial runs only.
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
        env.update({name: str(self.threads) for name in THREAD_VARIABLES})
        self.processes = []
        for index in range(1, self.workers):
            log = open(self.folder / f"worker{index}.log", "w")
            self.processes.append((subprocess.Popen([*self.command, str(self.folder), str(index)], env=env,
                                                    stdout=log, stderr=subprocess.STDOUT), log))
        return self

    def assign(self, job: dict) -> None:
        """The checked request, for the children (``wait_for(folder, JOB_FILE)`` reads it)."""
        _write_json(self.folder / JOB_FILE, job)

    def publish(self, spec: dict) -> None:
        """What the children need to join the study (``wait_for(folder, SPEC_FILE)`` reads it)."""
        _write_json(self.folder / SPEC_FILE, spec)

    @contextlib.contextmanager
    def guard(self):
        try:
            yield self
        except BaseException:
            self.stop()
            raise

    def run(self, study: optuna.Study, objective: Callable[[optuna.Trial], float], timeout: float = 0.0,
            while_waiting: Callable[[], None] | None = None, show: bool = True) -> None:
        """This process's trials, then ``while_waiting()`` (work for after the study that does not need
        its last trials) while the children finish theirs."""
        from tqdm.auto import tqdm

        start = _finished(study)
        with tqdm(total=self.n_trials, desc=f"{self.workers} workers", unit="trial", disable=not show) as bar:
            def refresh() -> None:
                bar.update(min(self.n_trials, _finished(study) - start) - bar.n)

            with cores_share(self.threads):
                take_trials(study, objective, self.tickets, timeout, after_each=refresh)
                if while_waiting is not None and any(process.poll() is None for process, _ in self.processes):
                    try:
                        while_waiting()
                    except Exception as exc:  # work done ahead of time: whoever needs it does it again
                        logger.warning("preparing ahead while the other workers finish failed: %s: %s",
                                       type(exc).__name__, exc)
            while any(process.poll() is None for process, _ in self.processes):
                time.sleep(0.2)
                refresh()
            refresh()
        failed = [f"worker {index} exited with {process.returncode}:\n"
                  + (self.folder / f"worker{index}.log").read_text()[-8000:]
                  for index, (process, _) in enumerate(self.processes, start=1) if process.returncode]
        if failed:
            raise RuntimeError("\n".join(failed))

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)

    def __exit__(self, kind, value, traceback) -> None:
        self.stop()
        for _, log in self.processes:
            log.close()
        self._folder.cleanup()


def _write_json(path: Path, content: dict) -> None:
    """Whole or not at all: a child polling for the file never reads half of it."""
    write_atomic(path, lambda handle: handle.write(json.dumps(content).encode()))


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def wait_for(folder: Path, name: str, poll: float = 0.05) -> dict:
    """A child's wait for the calling process to write ``name`` (``assign``, ``publish``); it gives
    up (exit 1) when the calling process is gone."""
    parent = os.getppid()
    path = Path(folder) / name
    while not path.is_file():
        if os.getppid() != parent or not Path(folder).is_dir():
            sys.exit(1)
        time.sleep(poll)
    return json.loads(path.read_text())
