"""The Optuna search over embed→reduce→cluster pipelines, one nested MLflow run per trial.

Only the label-free objective goes back to Optuna; AMI/ARI/NMI are computed beside it for the
record. Storage strings resolve here, in one place: ``""`` is a journal file in the working
directory (safe for several local processes), a path is a journal file, a URL is an RDB.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import optuna
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from selector import tracking
from selector.clustering import ClusterModel, Declined, suggest_clusterer
from selector.objective import (DEFAULT_OBJECTIVE, EVAL_SPACE, LEGACY_OBJECTIVE, EvalSpace, build_eval_space,
                                get_objective, silhouette_objective, validation_metrics)
from selector.reduction import ReductionCache, suggest_reducer

logger = logging.getLogger(__name__)

DEFAULT_JOURNAL = "optuna_journal.log"
PARENT_ATTR = "mlflow_parent_run_id"
MIN_TUNE_POINTS = 10
LOCK_KEY = 0x5E1EC7  # PostgreSQL advisory lock id for selector's set-up sections


def resolve_storage(storage: str = "", heartbeat_interval: int | None = None, grace_period: int | None = None):
    """``""`` → ``./optuna_journal.log``; a path → that journal file; ``scheme://…`` → RDB storage.

    An RDB storage beats every ``SELECTOR_HEARTBEAT_SECONDS`` (30) while a trial runs; a trial
    silent for ``SELECTOR_GRACE_SECONDS`` (90) is taken for dead by the next worker that asks.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in storage:
        heartbeat_interval = heartbeat_interval or int(os.environ.get("SELECTOR_HEARTBEAT_SECONDS", 30))
        grace_period = grace_period or int(os.environ.get("SELECTOR_GRACE_SECONDS", 90))
        # Heartbeats let the other workers mark a killed worker's trial failed (and retry it).
        return RDBStorage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                          heartbeat_stale_trial_callback=on_stale_trial)
    path = Path(storage or DEFAULT_JOURNAL).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def on_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker stopped beating: end its MLflow run and its worker's run as KILLED, then
    queue a retry. Optuna has already marked the trial FAIL."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    client = mlflow.tracking.MlflowClient()
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
    RetryHeartbeatStaleTrialCallback(max_retry=2)(study, trial)


@contextlib.contextmanager
def study_lock(storage: str = ""):
    """Serialise the short set-up of concurrent workers: table creation, the study, its parent run
    and its starting points. A PostgreSQL advisory lock for a PostgreSQL URL, ``flock`` on a file
    beside a journal; other URLs (SQLite) are not meant for parallel workers and get no lock."""
    if storage.startswith(("postgresql", "postgres://")):
        import sqlalchemy

        engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        finally:
            engine.dispose()
    elif "://" not in storage:
        import fcntl

        path = Path(storage or DEFAULT_JOURNAL).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.setup-lock", "a") as handle:  # not ".lock": Optuna's own journal lock uses that
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def pipeline_params(params: dict) -> tuple[dict, dict]:
    """Split flat trial params (``reducer``, ``reducer.x``, ``clusterer``, ``clusterer.y``) in two."""
    def part(prefix: str) -> dict:
        own = {k[len(prefix) + 1:]: v for k, v in params.items() if k.startswith(prefix + ".")}
        return {"name": params[prefix], **own}

    return part("reducer"), part("clusterer")


def flat_params(reducer: dict, clusterer: dict) -> dict:
    flat = {"reducer": reducer["name"], "clusterer": clusterer["name"]}
    flat.update({f"reducer.{k}": v for k, v in reducer.items() if k != "name"})
    flat.update({f"clusterer.{k}": v for k, v in clusterer.items() if k != "name"})
    return flat


def starting_points(clusterers: list[str], eval_params: dict | None = None) -> list[dict]:
    """Well-known pipelines tried first; parameters they leave out are sampled. The paper's UMAP is
    the evaluation space's (its scaling included), so that trial reuses the space's reduction."""
    paper_umap = {f"reducer.{k}" if k != "name" else "reducer": v for k, v in (eval_params or EVAL_SPACE).items()}
    points = [
        {**paper_umap, "clusterer": "agglomerative", "clusterer.linkage": "ward", "clusterer.mode": "k"},
        {**paper_umap, "clusterer": "hdbscan", "clusterer.cluster_selection_method": "eom"},
        {"reducer": "none", "reducer.scaling": "zscore", "clusterer": "kmeans"},
    ]
    return [p for p in points if p["clusterer"] in clusterers]


@dataclass
class SearchContext:
    """What every trial of one study shares. ``labels`` are read by validation only.

    ``objective`` is the one score that goes back to Optuna; ``compare`` names other registered
    objectives scored on every trial beside it (logged as ``objective.<name>``), which is how the
    selection benchmark compares them on the same trials.
    """

    vectors: np.ndarray
    labels: np.ndarray | None
    clusterers: list[str]
    seed: int
    cache: ReductionCache
    base_params: dict
    experiment_id: str
    parent_run_id: str
    objective: str = DEFAULT_OBJECTIVE
    worker_run_id: str = ""
    compare: tuple[str, ...] = ()
    eval_space: EvalSpace = field(init=False)
    eval_space_seconds: float = field(init=False)

    def __post_init__(self):
        get_objective(self.objective)
        for name in self.compare:
            get_objective(name)
        start = time.perf_counter()
        self.eval_space = build_eval_space(self.vectors, self.cache, self.seed)
        self.eval_space_seconds = time.perf_counter() - start


def score_trial(ctx: SearchContext, labels: np.ndarray) -> tuple[float, dict, dict]:
    """The objective's value, the trial's label-free metrics (``objective_value``, ``silhouette_umap``
    for reference, the objective's parts, ``objective.<name>`` for ``compare``) and its tags."""
    start = time.perf_counter()
    score = get_objective(ctx.objective).score(ctx.eval_space, labels, ctx.seed)
    objective_seconds = time.perf_counter() - start
    # The seed paper's silhouette, always logged for reference: among the objective's parts when it
    # computed it, else computed here.
    reference = {} if "silhouette_umap" in score.parts else \
        silhouette_objective(ctx.eval_space.coords, labels, seed=ctx.seed).parts
    metrics = {"objective_value": score.value, "n_clusters": score.n_clusters, "noise_fraction": score.noise_fraction,
               "objective_seconds": objective_seconds, **reference, **score.parts}
    for name in ctx.compare:
        metrics[f"objective.{name}"] = get_objective(name).score(ctx.eval_space, labels, ctx.seed).value
    metrics["score_seconds"] = time.perf_counter() - start
    tags = {"degenerate": score.degenerate, "objective_sampled": str(score.sampled).lower(),
            "objective_sample_size": score.sample_size if score.sampled else None}
    return score.value, metrics, tags


def fit_pipeline(ctx: SearchContext, params: dict, timings: dict | None = None) -> tuple[np.ndarray, ClusterModel]:
    """Reduce (through the study's cache) and cluster; ``timings`` receives each stage's seconds."""
    reducer, clusterer = pipeline_params(params)
    start = time.perf_counter()
    reduced = ctx.cache.reduce(ctx.vectors, reducer, ctx.seed)
    middle = time.perf_counter()
    model = ClusterModel(clusterer, seed=ctx.seed).fit(reduced)
    if timings is not None:
        timings.update(reduce_seconds=middle - start, cluster_seconds=time.perf_counter() - middle)
    return reduced, model


def objective(trial: optuna.Trial, ctx: SearchContext) -> float:
    """Build one pipeline, score it label-free, log it as a nested run; returns the objective only."""
    n, dim = ctx.vectors.shape
    reducer = suggest_reducer(trial, n, dim)
    clusterer = suggest_clusterer(trial, n, ctx.clusterers)
    client = mlflow.tracking.MlflowClient()
    run = client.create_run(ctx.experiment_id, tags={
        MLFLOW_PARENT_RUN_ID: ctx.parent_run_id, MLFLOW_RUN_NAME: f"trial-{trial.number}",
        "optuna_trial_number": str(trial.number), "optuna_study_name": trial.study.study_name})
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    if ctx.worker_run_id:
        trial.set_user_attr("worker_run_id", ctx.worker_run_id)
    params = {**ctx.base_params, **flat_params(reducer, clusterer)}
    try:
        timings: dict = {}
        _, model = fit_pipeline(ctx, trial.params, timings)
        objective_value, scores, tags = score_trial(ctx, model.labels_)
        validation = validation_metrics(ctx.labels, model.labels_)
        metrics = {**scores, "fit_seconds": timings["reduce_seconds"] + timings["cluster_seconds"], **timings,
                   "clusterer_fit_sample": model.fit_sample_size_, **validation}
        tracking.log_batch(params=params, metrics=metrics, tags=tags, run_id=run.info.run_id)
        for key, value in {**metrics, **{k: v for k, v in tags.items() if v is not None}}.items():
            if value is not None:
                trial.set_user_attr(key, value)
    except Declined as exc:
        logger.info("trial %d pruned: %s", trial.number, exc)
        tracking.log_batch(params=params, tags={"declined": str(exc)}, run_id=run.info.run_id)
        client.set_terminated(run.info.run_id, status="FINISHED")
        raise optuna.TrialPruned(str(exc)) from exc
    except Exception as exc:
        tracking.log_batch(params=params, tags={"error": f"{type(exc).__name__}: {exc}"}, run_id=run.info.run_id)
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")
    return objective_value


def make_sampler(seed: int, worker: str = "") -> optuna.samplers.BaseSampler:
    """Seeded multivariate TPE. Workers that join a study get a seed of their own (from the study's
    seed and their run id): with the same seed they would draw the same random start-up trials.
    ``constant_liar`` keeps parallel workers from piling onto one running trial's region."""
    if worker:
        seed = int(hashlib.sha256(f"{seed}:{worker}".encode()).hexdigest()[:8], 16)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def open_study(study_name: str, storage: str, seed: int, identity: dict) -> optuna.Study:
    """Create or resume a study; a name that already holds another data set, encoder or objective is
    refused. A study made before objectives were named optimised ``silhouette``."""
    sampler = make_sampler(seed)
    study = optuna.create_study(study_name=study_name, storage=resolve_storage(storage), sampler=sampler,
                                direction="maximize", load_if_exists=True)
    if study.trials and "objective" not in study.user_attrs:
        study.set_user_attr("objective", LEGACY_OBJECTIVE)
    for key, value in identity.items():
        known = study.user_attrs.get(key)
        if known is None:
            study.set_user_attr(key, value)
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
    best = study.best_trial
    tags["objective"] = study.user_attrs.get("objective", LEGACY_OBJECTIVE)
    metrics["best_objective_value"] = best.value
    metrics["best_silhouette_umap"] = best.user_attrs.get("silhouette_umap", best.value)
    tags["best_trial_run_id"] = best.user_attrs.get("mlflow_run_id")
    tags["best_trial_number"] = best.number
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
