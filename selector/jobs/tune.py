"""The `tune` job: one Optuna study for one (data set, encoder), a parent MLflow run and a nested run per trial."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from selector import tracking
from selector.data import Dataset, load_dataset
from selector.embedding import check_embed_request, embed
from selector.objective import DEFAULT_OBJECTIVE

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
                       clusterers: str, storage: str, objective: str, compare: str) -> TuneRequest:
    from selector.clustering import parse_clusterers
    from selector.objective import OBJECTIVES, get_objective
    from selector.search import MIN_TUNE_POINTS

    if int(n_trials) < 1:
        raise ValueError(f"`n_trials` must be an int >= 1; got {n_trials}.")
    if float(timeout) < 0:
        raise ValueError(f"`timeout` must be >= 0 seconds (0 = none); got {timeout}.")
    names = parse_clusterers(clusterers)
    objective = get_objective(objective).name
    compared = tuple(OBJECTIVES) if str(compare).strip() == "all" else \
        tuple(get_objective(n).name for n in str(compare).split(",") if n.strip())
    tracking.warn_if_password_logged("storage", storage)
    data = load_dataset(dataset)
    check_embed_request(data, encoder, checkpoint)
    if len(data) < MIN_TUNE_POINTS:
        raise ValueError(f"dataset {dataset!r} has {len(data)} points; clustering needs at least {MIN_TUNE_POINTS}.")
    return TuneRequest(data, names, objective, compared)


def tune_job(dataset: str = "digits", encoder: str = "raw", checkpoint: str = "", n_trials: int = 30,
             timeout: float = 0.0, seed: int = 0, clusterers: str = "all", study_name: str = "",
             storage: str = "", objective: str = DEFAULT_OBJECTIVE, compare: str = "") -> TuneResult:
    """One Optuna study for one (data set, encoder): a parent MLflow run and a nested run per trial.

    ``objective`` is the registered label-free objective the study maximises; ``compare`` (a comma
    list, or "all") names others scored beside it on every trial, for benchmarks.
    """
    from selector import reports, search
    from selector.embedding import cache_dir
    from selector.objective import eval_space_params, paper_recipe
    from selector.reduction import ReductionCache
    from selector.study import DEFAULT_JOURNAL, StudySession, summarize

    started = time.perf_counter()
    request = check_tune_request(dataset, encoder, checkpoint, n_trials, timeout, clusterers, storage, objective,
                                 compare)
    data, objective = request.data, request.objective
    embedded = embed(data, encoder, checkpoint=checkpoint)
    if len(embedded.vectors) < search.MIN_TUNE_POINTS:
        raise ValueError(f"only {len(embedded.vectors)} of {dataset!r}'s points could be embedded; "
                         f"clustering needs at least {search.MIN_TUNE_POINTS}.")
    if np.ptp(embedded.vectors, axis=0).max() == 0:
        raise ValueError(f"every vector of {dataset!r} under encoder {encoder!r} is the same: nothing to cluster.")

    identity = {"dataset": data.name, "encoder": encoder, "embedding_key": embedded.key, "objective": objective}
    study_name = study_name or f"{data.name}-{encoder}-{objective}-{embedded.key[:8]}"
    starts = search.starting_points(request.clusterers, eval_space_params(embedded.vectors))
    with StudySession(study_name, storage, seed, identity, starts, run_name=f"tune-{study_name}") as session:
        base = {"dataset": dataset, "encoder": encoder}
        tracking.log_batch(params={**base, "checkpoint": checkpoint, "n_trials": n_trials, "seed": seed,
                                   "clusterers": ",".join(request.clusterers), "storage": storage or DEFAULT_JOURNAL,
                                   "study_name": study_name, "objective": objective},
                           tags={"optuna_study_name": study_name, "study_parent_run_id": session.parent_run_id,
                                 "objective": objective})
        ctx = search.SearchContext(
            vectors=embedded.vectors, labels=embedded.labels, clusterers=request.clusterers, seed=int(seed),
            cache=ReductionCache(cache_dir().parent / "reductions", embedded.key), base_params=base,
            experiment_id=session.experiment_id, parent_run_id=session.parent_run_id, worker_run_id=session.run_id,
            objective=objective, compare=request.compare)
        session.optimize(lambda trial: search.objective(trial, ctx), n_trials, timeout)
        metrics, tags = summarize(session.study)
        # For reference only (it needs the true number of classes): the seed paper's fixed recipe.
        try:
            metrics.update(paper_recipe(ctx.eval_space, ctx.labels, objective, int(seed)))
        except Exception as exc:  # a reference number must not cost the study its summary
            logger.warning("the paper recipe could not be evaluated: %s: %s", type(exc).__name__, exc)
        # What this worker computed (rather than found in a cache): the cost side of the study.
        work = {"embed_seconds": 0.0 if embedded.cache_hit else embedded.seconds,
                "eval_space_seconds": ctx.eval_space_seconds, "reductions_fitted": ctx.cache.fits,
                "neighbour_graphs_built": ctx.cache.graph_builds}
        session.finish(metrics, tags, work)
        if metrics["n_trials_complete"]:
            work["worker_wall_seconds"] = time.perf_counter() - started
            try:
                labels = search.trial_labels(ctx, session.study.best_trial)
                reports.log_study_report(session.study, metrics, labels, ctx, embedded, run_id=session.parent_run_id,
                                         data=data, work=work)
            except Exception as exc:  # the study is done and summarised; a failed report is reported, not fatal
                logger.warning("the study report failed: %s: %s", type(exc).__name__, exc)
                tracking.log_batch(tags={"report_error": f"{type(exc).__name__}: {exc}"}, run_id=session.parent_run_id)
        print(reports.terminal_summary(study_name, metrics, session.parent_run_id, session.experiment_id, objective))
    return TuneResult(study=session.study, parent_run_id=session.parent_run_id, metrics=metrics, work=work)
