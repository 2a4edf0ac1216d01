"""The `tune` job: one Optuna study for one (data set, encoder), a parent MLflow run and a nested run per trial."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from selector.study import tracking
from selector.stages.data import Dataset, load_dataset
from selector.stages.embedding import check_embed_request, embed
from selector.stages.objective import DEFAULT_OBJECTIVE

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)


@dataclass
class TuneResult:
    study: optuna.Study
    parent_run_id: str
    metrics: dict
    work: dict


@dataclass(frozen=True)
class TuneRequest:
    """A ``tune`` request checked before anything is written: the data, clusterers and objectives."""

    data: Dataset
    clusterers: list[str]
    objective: str
    compare: tuple[str, ...]


def check_tune_request(dataset: str, encoder: str, checkpoint: str, n_trials: int, timeout: float,
                       clusterers: str, storage: str, objective: str, compare: str, labels: str = "auto") -> TuneRequest:
    from selector.stages.clustering import parse_clusterers
    from selector.stages.objective import OBJECTIVES, get_objective
    from selector.study.trials import MIN_TUNE_POINTS

    if int(n_trials) < 1:
        raise ValueError(f"`n_trials` must be an int >= 1; got {n_trials}.")
    if float(timeout) < 0:
        raise ValueError(f"`timeout` must be >= 0 seconds (0 = none); got {timeout}.")
    names = parse_clusterers(clusterers)
    objective = get_objective(objective).name
    compared = tuple(OBJECTIVES) if str(compare).strip() == "all" else \
        tuple(get_objective(n).name for n in str(compare).split(",") if n.strip())
    tracking.warn_if_password_logged("storage", storage)
    data = load_dataset(dataset, labels)
    check_embed_request(data, encoder, checkpoint)
    if len(data) < MIN_TUNE_POINTS:
        raise ValueError(f"dataset {dataset!r} has {len(data)} points; clustering needs at least {MIN_TUNE_POINTS}.")
    return TuneRequest(data, names, objective, compared)


def tune_job(dataset: str = "digits", encoder: str = "raw", checkpoint: str = "", n_trials: int = 30,
             timeout: float = 0.0, seed: int = 0, clusterers: str = "all", study_name: str = "",
             storage: str = "", objective: str = DEFAULT_OBJECTIVE, workers: int = 0,
             compare: str = "", labels: str = "auto") -> TuneResult:
    """One Optuna study for one (data set, encoder): a parent MLflow run and a nested run per trial.

    ``objective`` is the registered label-free objective the study maximises; ``workers`` processes
    on this machine run the ``n_trials`` (0 = its cores, at most one per trial; 1 = this process);
    ``labels`` (``auto``, ``none`` or a CSV of ``id,label``) are what AMI is reported against — never
    what chooses; ``compare`` (a comma list, or "all") names other objectives scored beside it, for benchmarks.
    """
    from selector.study.session import StudySession, check_workers, default_journal
    from selector.study.workers import WorkerPool

    started = time.perf_counter()
    workers = check_workers(workers, n_trials, storage)
    storage = storage or default_journal()  # beside the tracking store: the study and its runs stay together
    # The other workers start first and import while this process imports, checks the request and
    # embeds; once they have the job, the first of them creates the tracking store's tables while this
    # process builds the evaluation space.
    pool = WorkerPool([sys.executable, "-m", "selector.jobs.tune"], n_trials, workers) if workers > 1 else None
    with pool or contextlib.nullcontext():
        from selector.study import reports, trials  # scikit-learn, umap-learn: ~0.8 s the children spend importing too
        from selector.stages.objective import eval_space_params

        request = check_tune_request(dataset, encoder, checkpoint, n_trials, timeout, clusterers, storage, objective,
                                     compare, labels)
        embedded = embed_for_tuning(request.data, encoder, checkpoint)
        identity = {"dataset": request.data.name, "encoder": encoder, "embedding_key": embedded.key,
                    "objective": request.objective}
        study_name = study_name or f"{request.data.name}-{encoder}-{request.objective}-{embedded.key[:8]}"
        starts = trials.starting_points(request.clusterers, eval_space_params(embedded.vectors))
        if pool:
            pool.assign({"dataset": dataset, "labels": labels, "encoder": encoder, "checkpoint": checkpoint,
                         "timeout": float(timeout),
                         "seed": int(seed), "study_name": study_name, "storage": storage,
                         "clusterers": request.clusterers, "objective": request.objective,
                         "compare": list(request.compare)})
        cache = reduction_cache(embedded)
        eval_space_started = time.perf_counter()
        study_eval_space(embedded, seed, cache)  # cached: the trials' context reads it back
        eval_space_seconds = time.perf_counter() - eval_space_started
        with StudySession(study_name, storage, seed, identity, starts, run_name=f"tune-{study_name}") as session, \
                pool.guard() if pool else contextlib.nullcontext():
            tracking.log_batch(params={"dataset": dataset, "encoder": encoder, "checkpoint": checkpoint,
                                       "n_trials": n_trials, "seed": seed, "clusterers": ",".join(request.clusterers),
                                       "storage": storage, "study_name": study_name,
                                       "objective": request.objective, "workers": workers, "labels": labels},
                               tags={"optuna_study_name": study_name, "study_parent_run_id": session.parent_run_id,
                                     "objective": request.objective})
            ctx = search_context(request, embedded, int(seed), cache=cache)
            runs = tracking.TrialRuns(session.experiment_id, session.parent_run_id,
                                      {"dataset": dataset, "encoder": encoder}, worker_run_id=session.run_id)
            run_trials(session, ctx, pool, n_trials, timeout, observers=[runs])
            work = {"embed_seconds": 0.0 if embedded.cache_hit else embedded.seconds,  # computed, not found cached
                    "eval_space_seconds": eval_space_seconds, "reductions_fitted": ctx.cache.fits,
                    "neighbour_graphs_built": ctx.cache.graph_builds}
            def report(metrics: dict) -> None:
                if metrics["n_trials_complete"]:
                    work["worker_wall_seconds"] = time.perf_counter() - started
                    log_report(session, metrics, ctx, embedded, request.data, work)

            metrics, _ = session.finish(lambda: summarize_study(session.study, ctx), work, then=report)
            print(reports.terminal_summary(study_name, metrics, session.parent_run_id, session.experiment_id,
                                           request.objective, study=session.study))
    return TuneResult(study=session.study, parent_run_id=session.parent_run_id, metrics=metrics, work=work)


def run_trials(session, ctx, pool, n_trials: int, timeout: float, observers=()) -> None:
    """The study's ``n_trials``: all in this process, or taken with the pool's children once they are
    told which study and parent run to join; ``observers`` see this process's trials."""
    from selector.study import reports, trials

    def objective(trial):
        return trials.objective(trial, ctx, observers)

    if pool is None:
        session.optimize(objective, n_trials, timeout)
        return
    pool.publish({"experiment_id": session.experiment_id, "parent_run_id": session.parent_run_id})
    pool.run(session.study, objective, timeout, while_waiting=lambda: reports.prepare_report(ctx))


def embed_for_tuning(data: Dataset, encoder: str, checkpoint: str):
    """The data set's vectors (cached), refused when too few could be embedded or all are equal."""
    from selector.study.trials import MIN_TUNE_POINTS

    embedded = embed(data, encoder, checkpoint=checkpoint)
    if len(embedded.vectors) < MIN_TUNE_POINTS:
        raise ValueError(f"only {len(embedded.vectors)} of {data.name!r}'s points could be embedded; "
                         f"clustering needs at least {MIN_TUNE_POINTS}.")
    if np.ptp(embedded.vectors, axis=0).max() == 0:
        raise ValueError(f"every vector of {data.name!r} under encoder {encoder!r} is the same: nothing to cluster.")
    return embedded


def reduction_cache(embedded):
    """The study's reductions, in memory and in the user's cache folder (shared by its workers)."""
    from selector.stages.embedding import cache_dir
    from selector.stages.reduction import ReductionCache

    return ReductionCache(cache_dir().parent / "reductions", embedded.key)


def study_eval_space(embedded, seed: int, cache=None):
    """The study's evaluation space for ``embedded``: built once, then read back from the reduction cache."""
    from selector.stages.objective import build_eval_space

    return build_eval_space(embedded.vectors, cache or reduction_cache(embedded), int(seed))


def search_context(request: TuneRequest, embedded, seed: int, cache=None):
    """What every trial of this worker shares: the vectors, the study's cache and evaluation space."""
    from selector.study.trials import SearchContext

    return SearchContext(vectors=embedded.vectors, labels=embedded.labels, clusterers=request.clusterers, seed=seed,
                         cache=cache or reduction_cache(embedded), objective=request.objective,
                         compare=request.compare)


def run_worker(folder: str, index: int) -> None:
    """One of ``tune``'s child worker processes (``selector.study.workers``): it waits for the study the
    calling process sets up, then takes trials until the command's are all taken, each logged under
    the study's parent run. No run of its own and no progress bar: the calling process shows the study's."""
    from selector.study.session import create_tracking_store, make_sampler, resolve_storage
    from selector.study.workers import JOB_FILE, SPEC_FILE, TICKETS_FILE, Tickets, take_trials, wait_for

    folder = Path(folder)
    job = wait_for(folder, JOB_FILE)
    # The first child works ahead while the calling process builds the evaluation space and sets the
    # study up: the tracking store first (it needs MLflow only), then, once its own imports are done,
    # the report's map.
    if index == 1:
        ahead(lambda: create_tracking_store(job["storage"]), "creating the tracking store")
    import optuna

    from selector.study import reports, trials  # the heavy imports, after the store the calling process waits for

    request = TuneRequest(load_dataset(job["dataset"], job["labels"]), job["clusterers"], job["objective"],
                          tuple(job["compare"]))
    embedded = embed_for_tuning(request.data, job["encoder"], job["checkpoint"])  # the calling process's cache file
    cache = reduction_cache(embedded)
    if index == 1:
        ahead(lambda: reports.map_points(cache, embedded.vectors, job["seed"]), "the report's map")
    tracking.configure_tracking()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = wait_for(folder, SPEC_FILE)
    # Its own random stream: workers with one seed would draw the same trials.
    study = optuna.load_study(study_name=job["study_name"], storage=resolve_storage(job["storage"]),
                              sampler=make_sampler(job["seed"], worker=f"{spec['parent_run_id']}/{index}"))
    # The evaluation space is read when the first trial is scored.
    ctx = search_context(request, embedded, job["seed"], cache=cache)
    runs = tracking.TrialRuns(spec["experiment_id"], spec["parent_run_id"],
                              {"dataset": job["dataset"], "encoder": job["encoder"]})
    take_trials(study, lambda trial: trials.objective(trial, ctx, [runs]), Tickets(folder / TICKETS_FILE),
                job["timeout"])


def ahead(work, what: str) -> None:
    """Work a child does before it is needed, which the process that needs it would otherwise do: a
    failure here is only logged (that process meets it again, and reports it)."""
    try:
        work()
    except Exception as exc:
        logger.warning("%s ahead of time failed: %s: %s", what, type(exc).__name__, exc)


def summarize_study(study, ctx) -> tuple[dict, dict]:
    """The study's metrics and tags, with the seed paper's recipe for reference."""
    from selector.stages.objective import paper_recipe
    from selector.study.session import summarize

    metrics, tags = summarize(study)
    try:  # it needs the true number of classes: a reference number, never a competitor
        metrics.update(paper_recipe(ctx.eval_space, ctx.labels, ctx.objective, ctx.seed))
    except Exception as exc:  # a reference number must not cost the study its summary
        logger.warning("the paper recipe could not be evaluated: %s: %s", type(exc).__name__, exc)
    return metrics, tags


def alternative_labels(study, ctx) -> dict:
    """The clusterings of the study's alternatives (trial number → labels), refitted through the study's
    cache; one that fails is left out of the report, not fatal to it."""
    from selector.study import trials
    from selector.study.alternatives import alternatives

    labels = {}
    for alternative in alternatives(study)[1:]:
        try:
            labels[alternative.trial.number] = trials.trial_fit(ctx, alternative.trial)[1].labels_
        except Exception as exc:
            logger.warning("alternative trial %d could not be refitted for the report: %s: %s",
                           alternative.trial.number, type(exc).__name__, exc)
    return labels


def log_report(session, metrics: dict, ctx, embedded, data: Dataset, work: dict) -> None:
    """The study's clustering (``clusters.csv``) and report on its parent run; a failure is logged as
    a tag, never fatal to the study."""
    from selector.study import reports, trials

    try:
        reduced, model = trials.trial_fit(ctx, session.study.best_trial)
        labels, confidence = model.assignment(reduced)
        reports.log_clusters(reports.clusters_table(embedded.ids, labels, confidence, embedded.labels),
                             session.parent_run_id)
        reports.log_study_report(session.study, metrics, labels, ctx, embedded, run_id=session.parent_run_id,
                                 data=data, work=work, others=alternative_labels(session.study, ctx))
    except Exception as exc:
        logger.warning("the study report failed: %s: %s", type(exc).__name__, exc)
        tracking.log_batch(tags={"report_error": f"{type(exc).__name__}: {exc}"}, run_id=session.parent_run_id)


if __name__ == "__main__":  # a child worker process started by tune_job (``selector.study.workers.WorkerPool``)
    from selector import cli

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli.stop_on_sigterm()
    try:
        run_worker(sys.argv[1], int(sys.argv[2]))
    except KeyboardInterrupt:
        cli.exit_process(130)
    cli.exit_process(0)
