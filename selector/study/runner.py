"""Run one study from its request: in this process or with worker processes, tracked in MLflow or not.

``run_study(request, tracking=True)`` is what the ``tune`` job and ``selector.search`` share. Tracked,
the study lives in its storage (a journal file beside the tracking store by default) with one parent
MLflow run and a nested run per trial (``tracking.TrialRuns``, an observer of the pure trials),
``clusters.csv`` and the report. Untracked, nothing is written but the cache: the study is kept in
memory (its workers share a journal in their temporary folder, copied into memory at the end).
A worker process runs ``run_worker``: it reads the request the caller serialised and takes trials.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna

from selector.study.request import StudyRequest

logger = logging.getLogger(__name__)

WORKER_COMMAND = [sys.executable, "-m", "selector.study.runner"]


@dataclass
class StudyOutcome:
    """What a study gave: the Optuna study, its summary (``metrics``), what this process computed
    (``work``), and the chosen trial's clustering of every point (``labels``, ``confidence``, and the
    fitted ``model`` on the ``reduced`` points). ``parent_run_id`` is None for an untracked study."""

    request: StudyRequest
    study: optuna.Study
    metrics: dict
    work: dict
    parent_run_id: str | None = None
    labels: np.ndarray | None = field(default=None, repr=False)
    confidence: np.ndarray | None = field(default=None, repr=False)
    reduced: np.ndarray | None = field(default=None, repr=False)
    model: object = field(default=None, repr=False)
    context: object = field(default=None, repr=False)


def worker_pool(workers: int, n_trials: int):
    """The worker processes of a study (``None`` for one worker), started before the request is
    embedded so that their imports overlap the caller's work."""
    from selector.study.workers import WorkerPool

    return WorkerPool(WORKER_COMMAND, n_trials, workers) if workers > 1 else None


def run_study(request: StudyRequest, tracking: bool = True, pool=None, started: float | None = None,
              show: bool = True) -> StudyOutcome:
    """Embed, build the evaluation space, run ``request.n_trials`` trials and summarise them.
    ``pool``: worker processes already started for this request (else started here when it asks for
    several); ``show``: the progress bar and, tracked, the terminal summary."""
    started = time.perf_counter() if started is None else started
    if pool is None and request.workers > 1 and not request.reproducible:
        with worker_pool(request.workers, request.n_trials) as own:
            return run_study(request, tracking, own, started, show)
    from selector.stages.objective import eval_space_params
    from selector.study import trials

    if tracking and not request.storage:
        from selector.study.session import default_journal

        request.storage = default_journal()  # beside the tracking store: the study and its runs stay together
    embedded = request.embed(progress=show)
    starts = trials.starting_points(request.clusterers, eval_space_params(embedded.vectors))
    if pool:
        pool.assign(request.to_job(pool.folder, tracked=tracking))
    space_started = time.perf_counter()
    request.build_eval_space()
    work = {"embed_seconds": 0.0 if embedded.cache_hit else embedded.seconds,  # computed, not found cached
            "eval_space_seconds": time.perf_counter() - space_started}
    study_run = _tracked if tracking else _untracked
    return study_run(request, pool, starts, work, started, show)


def _tracked(request: StudyRequest, pool, starts: list[dict], work: dict, started: float, show: bool) -> StudyOutcome:
    from selector.study import reports, tracking
    from selector.study.session import StudySession

    outcome: dict = {}
    with StudySession(request.study_name, request.storage, request.seed, request.identity, starts,
                      run_name=f"tune-{request.study_name}") as session, \
            pool.guard() if pool else contextlib.nullcontext():
        tracking.log_batch(params=request.params(),
                           tags={"optuna_study_name": request.study_name, "study_parent_run_id": session.parent_run_id,
                                 "objective": request.objective.name})
        ctx = request.context()
        runs = tracking.TrialRuns(session.experiment_id, session.parent_run_id,
                                  {"dataset": request.dataset, "encoder": request.encoder}, worker_run_id=session.run_id)
        spec = {"experiment_id": session.experiment_id, "parent_run_id": session.parent_run_id}
        _run_trials(session.study, ctx, pool, request, spec, [runs], show,
                    optimize=lambda one_trial: session.optimize(one_trial, request.n_trials, request.timeout))
        work.update(reductions_fitted=ctx.cache.fits, neighbour_graphs_built=ctx.cache.graph_builds)
        _settle(session.study, ctx)

        def report(metrics: dict) -> None:
            if metrics["n_trials_complete"]:
                work["worker_wall_seconds"] = time.perf_counter() - started
                outcome.update(_log_report(session, metrics, ctx, request, work))

        metrics, _ = session.finish(lambda: summarize_study(session.study, ctx), work, then=report)
        if show:
            print(reports.terminal_summary(request.study_name, metrics, session.parent_run_id, session.experiment_id,
                                           request.objective.name, study=session.study))
    return StudyOutcome(request, session.study, metrics, work, session.parent_run_id, context=ctx, **outcome)


def _untracked(request: StudyRequest, pool, starts: list[dict], work: dict, started: float, show: bool) -> StudyOutcome:
    from selector.study.session import make_sampler, optuna_experimental, resolve_storage
    from selector.study.workers import JOURNAL_FILE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if request.storage:
        storage = resolve_storage(request.storage)  # a study the user asked to keep
    elif pool:
        storage = resolve_storage(str(pool.folder / JOURNAL_FILE))  # shared by the workers, gone with them
    else:
        storage = None  # in memory
    study = optuna.create_study(study_name=request.study_name, storage=storage, sampler=make_sampler(request.seed),
                                direction="maximize", load_if_exists=True)
    study.set_user_attr("objective", request.objective.name)
    if not study.trials:
        for point in starts:
            study.enqueue_trial(point, skip_if_exists=True)
    ctx = request.context()

    def optimize(one_trial):
        with optuna_experimental("fail_stale_trials", "heartbeat"):
            study.optimize(one_trial, n_trials=request.n_trials, timeout=request.timeout or None, catch=(Exception,),
                           show_progress_bar=show)

    _run_trials(study, ctx, pool, request, {}, [], show, optimize=optimize, report_ahead=False)
    if pool and not request.storage:  # the journal goes with the pool's folder: the study stays, in memory
        kept = optuna.storages.InMemoryStorage()
        optuna.copy_study(from_study_name=study.study_name, from_storage=storage, to_storage=kept)
        study = optuna.load_study(study_name=study.study_name, storage=kept)
    work.update(reductions_fitted=ctx.cache.fits, neighbour_graphs_built=ctx.cache.graph_builds,
                worker_wall_seconds=time.perf_counter() - started)
    _settle(study, ctx)
    metrics, _ = summarize_study(study, ctx)
    outcome = _chosen(study, ctx) if metrics["n_trials_complete"] else {}
    return StudyOutcome(request, study, metrics, work, None, context=ctx, **outcome)


def _run_trials(study, ctx, pool, request: StudyRequest, spec: dict, observers: list, show: bool, optimize,
                report_ahead: bool = True) -> None:
    """The study's ``n_trials``: all in this process (``optimize``), or taken with the pool's children
    once they are told which study (and, tracked, which parent run) to join; ``report_ahead``: prepare
    the report while the children finish."""
    from selector.study import trials

    def one_trial(trial):
        return trials.run_trial(trial, ctx, observers)

    if request.reproducible and request.workers > 1:
        from selector.study.batches import run_batches

        run_batches(study, ctx, request, observers, show)
        return
    if pool is None:
        optimize(one_trial)
        return
    pool.publish(spec)
    if report_ahead:
        from selector.study import reports

        pool.run(study, one_trial, request.timeout, while_waiting=lambda: reports.prepare_report(ctx), show=show)
    else:
        pool.run(study, one_trial, request.timeout, show=show)


def _settle(study, ctx) -> None:
    """The study's close call settled (``alternatives.settle_choice``); on failure the best trial stays
    the choice, and the study goes on."""
    from selector.study.alternatives import settle_choice

    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return
    try:
        settle_choice(study, ctx)
    except Exception as exc:  # the objective's choice stands; a tie-break must not cost the study
        logger.warning("the close call could not be settled, the best trial is the choice: %s: %s",
                       type(exc).__name__, exc)


def _chosen(study, ctx) -> dict:
    """The chosen trial's clustering of every point: labels, confidences, the fitted model."""
    from selector.study import trials
    from selector.study.alternatives import chosen_trial

    reduced, model = trials.trial_fit(ctx, chosen_trial(study))
    labels, confidence = model.assignment(reduced)
    return {"labels": labels, "confidence": confidence, "reduced": reduced, "model": model}


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


def write_report(folder: Path, study, metrics: dict, ctx, request: StudyRequest, work: dict, labels=None) -> Path:
    """The study's report (``report.html``, self-contained) and its tables and plots in ``folder``."""
    from selector.study import reports

    if labels is None:
        labels = _chosen(study, ctx)["labels"]
    reports.write_study_report(Path(folder), study, metrics, labels, ctx, request.embedded, data=request.data,
                               work=work, others=alternative_labels(study, ctx))
    return Path(folder) / "report.html"


def _log_report(session, metrics: dict, ctx, request: StudyRequest, work: dict) -> dict:
    """The study's clustering (``clusters.csv``) and report on its parent run; a failure is logged as
    a tag, never fatal to the study. Returns the chosen clustering."""
    import tempfile

    from selector import retry
    from selector.study import reports, tracking

    try:
        chosen = _chosen(session.study, ctx)
        embedded = request.embedded
        reports.log_clusters(reports.clusters_table(embedded.ids, chosen["labels"], chosen["confidence"],
                                                    embedded.labels), session.parent_run_id)
        with tempfile.TemporaryDirectory() as tmp:
            write_report(Path(tmp), session.study, metrics, ctx, request, work, labels=chosen["labels"])
            retry.client().log_artifacts(session.parent_run_id, tmp)
        return chosen
    except Exception as exc:
        logger.warning("the study report failed: %s: %s", type(exc).__name__, exc)
        tracking.log_batch(tags={"report_error": f"{type(exc).__name__}: {exc}"}, run_id=session.parent_run_id)
        return {}


def run_worker(folder: str, index: int) -> None:
    """One of a study's child worker processes (``selector.study.workers``): it waits for the request
    the calling process serialises, then takes trials until the command's are all taken — tracked,
    each logged under the study's parent run. No run of its own and no progress bar: the calling
    process shows the study's."""
    from selector.study.session import create_tracking_store, make_sampler, resolve_storage
    from selector.study.workers import JOB_FILE, JOURNAL_FILE, SPEC_FILE, TICKETS_FILE, Tickets, take_trials, wait_for

    folder = Path(folder)
    job = wait_for(folder, JOB_FILE)
    tracked = job["tracked"]
    # The first child works ahead while the calling process builds the evaluation space and sets the
    # study up: the tracking store first (it needs MLflow only), then, once its own imports are done,
    # the report's map.
    if index == 1 and tracked:
        ahead(lambda: create_tracking_store(job["storage"]), "creating the tracking store")
    from selector.study import reports, trials  # the heavy imports, after the store the calling process waits for

    request = StudyRequest.from_job(job, folder)
    if index == 1 and tracked:
        ahead(lambda: reports.map_points(request.cache, request.embedded.vectors, request.seed), "the report's map")
    observers = []
    if tracked:
        from selector.study import tracking

        tracking.configure_tracking()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = wait_for(folder, SPEC_FILE)
    if tracked:
        storage = job["storage"]
        observers = [tracking.TrialRuns(spec["experiment_id"], spec["parent_run_id"],
                                        {"dataset": job["dataset"], "encoder": job["encoder"]})]
    else:
        storage = job["storage"] or str(folder / JOURNAL_FILE)
    # Its own random stream, from (seed, worker index): workers with one seed would draw the same
    # trials, and a run id would make every run's streams new.
    study = optuna.load_study(study_name=job["study_name"], storage=resolve_storage(storage),
                              sampler=make_sampler(job["seed"], worker=f"worker {index}"))
    ctx = request.context()  # the evaluation space is read from the cache when the first trial is scored
    take_trials(study, lambda trial: trials.run_trial(trial, ctx, observers), Tickets(folder / TICKETS_FILE),
                job["timeout"])


def ahead(work, what: str) -> None:
    """Work a child does before it is needed, which the process that needs it would otherwise do: a
    failure here is only logged (that process meets it again, and reports it)."""
    try:
        work()
    except Exception as exc:
        logger.warning("%s ahead of time failed: %s: %s", what, type(exc).__name__, exc)


if __name__ == "__main__":  # a child worker process started by run_study (``selector.study.workers.WorkerPool``)
    from selector import cli

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli.stop_on_sigterm()
    try:
        run_worker(sys.argv[1], int(sys.argv[2]))
    except KeyboardInterrupt:
        cli.exit_process(130)
    cli.exit_process(0)
