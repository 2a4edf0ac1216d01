"""Reproducible parallel trials: ``workers`` trials at a time, asked of one sampler, evaluated in
parallel, told back in order.

Free-running workers (``selector.study.workers``) each draw from their own sampler and see the others'
trials as timing lets them, so two runs of one seeded study differ. Here this process alone asks the
study for a batch of ``workers`` trials (the sampler's ``constant_liar`` keeps them apart), draws their
pipelines, hands the evaluations — pure, ``trials.evaluate`` — to ``workers`` evaluating processes, and
tells the results in trial order before it asks for the next batch: every run sees the same history at
every ask, so a seeded study gives the same trials whatever the timing. The cost is the wait for each
batch's slowest trial (``benchmarks/bench_reproducible.py`` measures it). Observers (MLflow's trial runs)
run here, as they do for this process's own trials.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import optuna

logger = logging.getLogger(__name__)


def run_batches(study: optuna.Study, ctx, request, observers=(), show: bool = True) -> None:
    """``request.n_trials`` trials of ``study`` in batches of ``request.workers`` processes."""
    from tqdm.auto import tqdm

    from selector.machine import available_cores
    from selector.study import trials

    threads = max(1, available_cores() // request.workers)
    with tempfile.TemporaryDirectory(prefix="selector-batches-") as folder:
        (Path(folder) / JOB_FILE).write_text(json.dumps(request.to_job(Path(folder), tracked=False)))
        evaluators = [Evaluator(folder, index, threads) for index in range(request.workers)]
        try:
            with tqdm(total=request.n_trials, desc=f"{request.workers} workers, in batches", unit="trial",
                      disable=not show) as bar:
                left = request.n_trials
                while left:
                    batch, told = [study.ask() for _ in range(min(request.workers, left))], set()
                    drawn = [trials.begin_trial(trial, ctx, observers) for trial in batch]
                    for trial, evaluator in zip(batch, evaluators):
                        evaluator.send(trial.params)
                    try:
                        for trial, params, evaluator in zip(batch, drawn, evaluators):
                            _tell(study, trial, ctx, params, evaluator.receive, observers)
                            told.add(trial.number)
                            bar.update(1)
                    except BaseException:
                        for trial in batch:  # Ctrl-C: what was not told is FAIL, as Optuna marks an interrupted trial
                            if trial.number not in told:
                                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        raise
                    left -= len(batch)
        finally:
            for evaluator in evaluators:
                evaluator.close()


def _tell(study, trial, ctx, params, result_of, observers) -> None:
    from selector.study import trials

    try:
        value = trials.finish_trial(trial, ctx, params, result_of, observers)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except EvaluatorLost:
        raise
    except Exception as exc:  # a failed trial fails alone, as ``catch=(Exception,)`` makes it in optimize
        logger.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)


class EvaluatorLost(RuntimeError):
    """An evaluating process exited; the end of its log says why."""


class Evaluator:
    """One evaluating process (``python -m selector.study.batches``): parameters in, a ``TrialResult`` —
    or the exception the evaluation raised — out, as length-prefixed pickles between this package's
    own processes over a pipe (the child answers on a descriptor of its own; its stdout goes to its log)."""

    def __init__(self, folder: str, index: int, threads: int):
        import os
        import subprocess
        import sys

        from selector.study.workers import THREAD_VARIABLES

        self.log_path = Path(folder) / f"evaluator{index}.log"
        self._log = open(self.log_path, "w")
        env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
        self.process = subprocess.Popen([sys.executable, "-m", "selector.study.batches", folder], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)

    def send(self, params: dict) -> None:
        _write(self.process.stdin, params)

    def receive(self):
        try:
            kind, value = _read(self.process.stdout)
        except EOFError:
            self.process.wait()
            raise EvaluatorLost(f"an evaluating process exited with {self.process.returncode}:\n"
                                + self.log_path.read_text()[-4000:]) from None
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except Exception:
                self.process.kill()
        self._log.close()


def _write(stream, value) -> None:
    import pickle

    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _read(stream):
    import pickle

    size = stream.read(8)
    if len(size) < 8:
        raise EOFError
    return pickle.loads(stream.read(int.from_bytes(size, "little")))


def serve(folder: str) -> None:
    """An evaluating process: the request once (its vectors from the caller's folder), then one
    evaluation per parameters received, until its input closes."""
    import os
    import sys

    from selector.study import trials
    from selector.study.request import StudyRequest

    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever prints goes to the log, never into the answers
    requests = sys.stdin.buffer
    ctx = StudyRequest.from_job(json.loads((Path(folder) / JOB_FILE).read_text()), Path(folder)).context()
    while True:
        try:
            params = _read(requests)
        except EOFError:
            return
        try:
            _write(answers, ("result", trials.evaluate(ctx, params)))
        except Exception as exc:  # Declined included: the caller's bookkeeping decides what it means
            try:
                _write(answers, ("error", exc))
            except Exception:  # an exception that does not pickle travels as its message
                _write(answers, ("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


JOB_FILE = "job.json"

if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    serve(sys.argv[1])
