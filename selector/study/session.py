"""A study's lifecycle, owned in one place: where it is stored, who may set it up, and the MLflow
run it hangs under.

Storage strings resolve here: ``""`` is a journal file in the working directory (safe for several
local processes), a path is a journal file, a URL is an RDB. ``StudySession`` is one worker's part
in one study: under a set-up lock it creates the tracking store's tables and opens (or resumes) the
study, starts the worker's MLflow run, picks the study's one parent run, gives a joining worker its
own random stream, enqueues the starting points once; on the way out it logs the summary on the
parent and repairs a parent that a killed worker left KILLED.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import optuna

from selector import retry

from selector.study.alternatives import alternatives, choice_margin
from selector.machine import available_cores
from selector.stages.objective import LEGACY_OBJECTIVE
from selector.retry import retrying_rdb_storage

logger = logging.getLogger(__name__)

DEFAULT_JOURNAL = "optuna_journal.log"
JOURNAL_ENV = "SELECTOR_JOURNAL"  # overrides where default_journal() puts studies
TRACKING_ATTR = "tracking_store"  # the study's user attr naming the store its runs are in
PARENT_ATTR = "mlflow_parent_run_id"
LOCK_KEY = 0x5E1EC7  # PostgreSQL advisory lock id for selector's set-up sections


def resolve_storage(storage: str = "", heartbeat_interval: int | None = None, grace_period: int | None = None):
    """``""`` → ``./optuna_journal.log``; a path → that journal file; ``scheme://…`` → RDB storage.

    An RDB storage beats every ``SELECTOR_HEARTBEAT_SECONDS`` (30) while a trial runs; a trial
    silent for ``SELECTOR_GRACE_SECONDS`` (90) is taken for dead by the next worker that asks.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in storage:
        heartbeat_interval = heartbeat_interval or int(os.environ.get("SELECTOR_HEARTBEAT_SECONDS", 30))
        grace_period = grace_period or int(os.environ.get("SELECTOR_GRACE_SECONDS", 90))
        # Heartbeats let the other workers mark a killed worker's trial failed (and retry it).
        # PostgreSQL restarting mid-study: every storage call is retried until it is back.
        return retrying_rdb_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                    heartbeat_stale_trial_callback=on_stale_trial)
    path = Path(storage or DEFAULT_JOURNAL).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def default_journal() -> str:
    """Where a study lives when no ``storage`` is given: ``$SELECTOR_JOURNAL`` when set, else
    ``optuna_journal.log`` beside the tracking store's SQLite file (so the study and its trial runs
    stay together, wherever the command runs), or in the working directory for a tracking server."""
    from selector.study import tracking

    if os.environ.get(JOURNAL_ENV):
        return str(Path(os.environ[JOURNAL_ENV]).expanduser().resolve())
    uri = tracking.configure_tracking()
    folder = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else Path.cwd()
    return str((folder / DEFAULT_JOURNAL).resolve())


def on_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker stopped beating: end its MLflow run and its worker's run as KILLED, then
    queue a retry. Optuna has already marked the trial FAIL."""
    import mlflow

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    client = retry.client()
    for key in ("mlflow_run_id", "worker_run_id"):
        run_id = trial.user_attrs.get(key)
        if not run_id:
            continue
        try:
            if client.get_run(run_id).info.status != "RUNNING":
                continue
            client.set_tag(run_id, "error", f"worker stopped in trial {trial.number}: no Optuna heartbeat")
            client.set_terminated(run_id, status="KILLED")
        except mlflow.exceptions.MlflowException as exc:
            logger.warning("could not mark run %s of stale trial %d killed: %s", run_id, trial.number, exc)
    logger.warning("trial %d of study %r lost its worker (no heartbeat); it is FAIL and queued again",
                   trial.number, study.study_name)
    with optuna_experimental("RetryHeartbeatStaleTrialCallback", "retry"):
        RetryHeartbeatStaleTrialCallback(max_retry=2)(study, trial)


@contextlib.contextmanager
def study_lock(storage: str = ""):
    """Serialise the short set-up of concurrent workers: table creation, the study, its parent run
    and its starting points. A PostgreSQL advisory lock for a PostgreSQL URL, ``flock`` on a file
    beside a journal; other URLs (SQLite) are not meant for parallel workers and get no lock."""
    from selector.locks import advisory_lock, file_lock

    if storage.startswith(("postgresql", "postgres://")):
        with advisory_lock(storage, LOCK_KEY):
            yield
    elif "://" not in storage:
        path = Path(storage or DEFAULT_JOURNAL).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(f"{path}.setup-lock"):  # not ".lock": Optuna's own journal lock uses that
            yield
    else:
        yield


def make_sampler(seed: int, worker: str = "") -> optuna.samplers.BaseSampler:
    """Seeded multivariate TPE. Workers that join a study get a seed of their own (from the study's
    seed and their run id): with the same seed they would draw the same random start-up trials.
    ``constant_liar`` keeps parallel workers from piling onto one running trial's region."""
    if worker:
        seed = int(hashlib.sha256(f"{seed}:{worker}".encode()).hexdigest()[:8], 16)
    with optuna_experimental("group", "multivariate", "constant_liar"):
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def optuna_experimental(*features: str):
    """Optuna's ExperimentalWarning for ``features`` (argument or function names) — settled choices of
    this project, not the user's — silenced in the block (``selector.quiet``)."""
    from selector.quiet import known_noise

    return known_noise(*(f".*{name}.*" for name in features), category=optuna.exceptions.ExperimentalWarning)


def open_study(study_name: str, storage: str, seed: int, identity: dict) -> optuna.Study:
    """Create or resume a study; a name that already holds another data set, encoder or objective is
    refused. A study made before objectives were named optimised ``silhouette``."""
    import mlflow

    from selector.study import tracking

    sampler = make_sampler(seed)
    study = optuna.create_study(study_name=study_name, storage=resolve_storage(storage), sampler=sampler,
                                direction="maximize", load_if_exists=True)
    if study.trials and "objective" not in study.user_attrs:
        study.set_user_attr("objective", LEGACY_OBJECTIVE)
    # The tracking store its trial runs are logged to (a study made before this was recorded adopts
    # the first store that resumes it).
    identity = {**identity, TRACKING_ATTR: tracking.mask_url(mlflow.get_tracking_uri()).rstrip("/")}
    for key, value in identity.items():
        known = study.user_attrs.get(key)
        if known is None:
            study.set_user_attr(key, value)
        elif key == TRACKING_ATTR and known != value:
            raise ValueError(f"study {study_name!r} in {tracking.mask_url(storage or DEFAULT_JOURNAL)} belongs to the "
                             f"tracking store {known}, where its trial runs are, not to {value}. Resume it with "
                             f"MLFLOW_TRACKING_URI={known}, or start a new study here with another `study_name` or "
                             "`storage`.")
        elif known != value:
            hint = (f"resume it with `objective={known}`, or " if key == "objective" else "")
            raise ValueError(f"study {study_name!r} optimises {key}={known!r}, not {value!r}: its trials were "
                             f"chosen for that; {hint}choose another `study_name`.")
    return study


def summarize(study: optuna.Study) -> tuple[dict, dict]:
    """Parent-run metrics and tags over all the study's complete trials (every worker's)."""
    from scipy.stats import spearmanr

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    declined = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    metrics: dict = {"n_trials_complete": len(complete), "n_trials_failed": len(failed),
                     "n_trials_declined": len(declined)}
    tags: dict = {"optuna_study_name": study.study_name}
    if not complete:
        return metrics, tags
    found = alternatives(study)
    best = found[0].trial if found else study.best_trial
    margin = choice_margin(found)
    if margin is not None:
        metrics["choice_margin"] = margin
    metrics["n_alternatives"] = max(0, len(found) - 1)
    tags["objective"] = study.user_attrs.get("objective", LEGACY_OBJECTIVE)
    metrics["best_objective_value"] = best.value
    metrics["best_silhouette_umap"] = best.user_attrs.get("silhouette_umap", best.value)
    tags["best_trial_run_id"] = best.user_attrs.get("mlflow_run_id")
    tags["best_trial_number"] = best.number
    tags["chosen_by"] = "objective" if best.number == study.best_trial.number else "separation"
    scored = [t for t in complete if "ami" in t.user_attrs]
    if scored and "ami" in best.user_attrs:
        metrics["best_ami"] = best.user_attrs["ami"]
        metrics["oracle_ami"] = max(t.user_attrs["ami"] for t in scored)
        metrics["selection_regret"] = metrics["oracle_ami"] - metrics["best_ami"]
        if len(scored) >= 3:
            ami = [t.user_attrs["ami"] for t in scored]
            for name, values in (("spearman_objective_ami", [t.value for t in scored]),
                                 ("spearman_silhouette_ami", [t.user_attrs.get("silhouette_umap", t.value) for t in scored])):
                rho = spearmanr(values, ami).statistic
                if np.isfinite(rho):
                    metrics[name] = float(rho)
    return metrics, tags


def default_workers(n_trials: int) -> int:
    """The machine's cores (those this process may use), at most one per trial."""
    return max(1, min(available_cores(), int(n_trials)))


def check_workers(workers: int, n_trials: int, storage: str) -> int:
    """``workers`` resolved (0 = ``default_workers``) and checked against the storage: several processes
    need a journal file or a server database (SQLite locks the whole file for every write)."""
    if int(workers) < 0:
        raise ValueError(f"`workers` must be an int >= 0 (0 = this machine's cores); got {workers}.")
    resolved = default_workers(n_trials) if int(workers) == 0 else min(int(workers), int(n_trials))
    if resolved > 1 and storage.startswith("sqlite"):
        raise ValueError(f"`workers`={resolved} needs a storage several processes can share: a journal file "
                         f"(storage=\"\" or a path) or a server database (postgresql://…); got {storage!r}.")
    return resolved


def create_tracking_store(storage: str) -> None:
    """The tracking store's tables (MLflow's own migration on a new store), created under the set-up
    lock: two processes migrating one new SQLite store together crash inside MLflow."""
    from selector.study import tracking

    tracking.import_store_code()
    with study_lock(storage):
        _create_tracking_store()


def _create_tracking_store() -> None:
    from selector.study import tracking

    tracking.configure_tracking()
    retry.client().search_experiments(max_results=1)


class StudySession:
    """One worker's part in one study, as a context manager::

        with StudySession(name, storage, seed, identity, starting_points, run_name) as session:
            session.optimize(objective, n_trials, timeout)
            session.finish(summary, work, then=log_report)

    Entering sets everything up (see the module's docstring) and leaves the worker's MLflow run
    active; leaving ends it (FAILED when an exception escapes).
    """

    def __init__(self, name: str, storage: str, seed: int, identity: dict, starting_points: list[dict],
                 run_name: str):
        self.name, self.storage, self.seed = name, storage, int(seed)
        self.identity, self.starting_points, self.run_name = identity, starting_points, run_name

    def __enter__(self) -> "StudySession":
        import mlflow

        from selector.study import tracking

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and the summary say it
        tracking.import_store_code()  # while another worker may hold the lock
        with study_lock(self.storage):  # workers starting together create tables and the study once
            _create_tracking_store()
            self.study = open_study(self.name, self.storage, self.seed, self.identity)
        self._run = retry.call(mlflow.start_run, run_name=self.run_name, nested=mlflow.active_run() is not None)
        try:
            with study_lock(self.storage):  # one parent run and one set of starting points per study
                self.parent_run_id = self._parent_run()
                if self.joining:  # its own random stream (a lone worker stays reproducible)
                    self.study.sampler = make_sampler(self.seed, worker=self.run_id)
                if not self.study.trials:
                    for point in self.starting_points:
                        self.study.enqueue_trial(point, skip_if_exists=True)
        except BaseException:
            retry.call(mlflow.end_run, status="FAILED")
            raise
        return self

    def __exit__(self, kind, value, traceback) -> None:
        import mlflow

        if kind is not None and issubclass(kind, KeyboardInterrupt):  # Ctrl-C or SIGTERM: stopped, not broken
            retry.call(mlflow.end_run, status="KILLED")
            return
        self._run.__exit__(kind, value, traceback)

    @property
    def run_id(self) -> str:
        """This worker's MLflow run."""
        return self._run.info.run_id

    @property
    def experiment_id(self) -> str:
        return self._run.info.experiment_id

    @property
    def joining(self) -> bool:
        """Whether another worker's run is the study's parent."""
        return self.parent_run_id != self.run_id

    def optimize(self, objective: Callable[[optuna.Trial], float], n_trials: int, timeout: float = 0.0) -> None:
        """Run trials until this worker has done ``n_trials`` or ``timeout`` seconds (0 = none) passed;
        a trial that raises fails alone."""
        with optuna_experimental("fail_stale_trials", "heartbeat"):
            self.study.optimize(objective, n_trials=int(n_trials), timeout=float(timeout) or None,
                                catch=(Exception,), show_progress_bar=True)

    def finish(self, summary: Callable[[], tuple[dict, dict]], work: dict,
               then: Callable[[dict], None] | None = None) -> tuple[dict, dict]:
        """``work`` (what this worker computed) on its run; the study's summary — ``summary()``, the
        metrics and tags — on both runs, then ``then(metrics)`` (the report and ``clusters.csv`` on the
        parent); a parent left KILLED by its worker marked FINISHED by the worker that completed the
        study's work. Returns the summary.

        All of it under the set-up lock: workers finishing together would otherwise each log what they
        saw, and one that saw fewer trials could write its summary or its report last."""
        from selector.study import tracking

        tracking.log_batch(metrics=work, run_id=self.run_id)
        with study_lock(self.storage):
            metrics, tags = summary()
            for run_id in {self.parent_run_id, self.run_id}:
                tracking.log_batch(metrics=metrics, tags=tags, run_id=run_id)
            if then is not None:
                then(metrics)
        if self.joining:
            client = retry.client()
            if client.get_run(self.parent_run_id).info.status in ("KILLED", "FAILED"):
                client.set_tag(self.parent_run_id, "study_finished_by_run_id", self.run_id)
                client.set_terminated(self.parent_run_id, status="FINISHED")
        return metrics, tags

    def _parent_run(self) -> str:
        """The study's one parent run: kept with the study, so later workers hang their trials under it."""
        import mlflow

        known = self.study.user_attrs.get(PARENT_ATTR)
        if known:
            try:
                retry.client().get_run(known)
                return known
            except mlflow.exceptions.MlflowException:
                logger.warning("the study's parent run %s is not in this tracking store; this run takes over", known)
        self.study.set_user_attr(PARENT_ATTR, self.run_id)
        return self.run_id
