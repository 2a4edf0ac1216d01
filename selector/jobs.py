"""The jobs behind the entry points. Their signatures hold the defaults (MLproject mirrors them)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np

from selector import tracking
from selector.data import load_dataset
from selector.embedding import Embeddings, check_embed_request, embed
from selector.encoders import resolve_device
from selector.objective import DEFAULT_OBJECTIVE

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)


def embed_job(dataset: str = "digits", encoder: str = "efficientnet_lite0", checkpoint: str = "",
              batch_size: int = 64, image_size: int = 0, device: str = "auto") -> Embeddings:
    """Compute (or reuse cached) embeddings and log them, their shape and their speed to MLflow."""
    start = time.perf_counter()
    # Validate everything before a run exists: a bad request leaves nothing half-written.
    data = load_dataset(dataset)
    check_embed_request(data, encoder, checkpoint, image_size, batch_size)
    resolved_device = resolve_device(device)
    tracking.configure_tracking()
    with mlflow.start_run(run_name=f"embed-{data.name}-{encoder}", nested=mlflow.active_run() is not None):
        result = embed(data, encoder, checkpoint=checkpoint, image_size=image_size,
                       batch_size=batch_size, device=resolved_device)
        log_embeddings(result, dataset=dataset, checkpoint=checkpoint, batch_size=batch_size,
                       image_size=image_size, device=device, wall_seconds=time.perf_counter() - start)
    return result


def log_embeddings(result: Embeddings, wall_seconds: float, **params) -> None:
    """Params, shape, speed, cache use and the vectors themselves (``embeddings.npz``) on the active run."""
    n, dim = result.vectors.shape
    tracking.log_batch(
        params={**params, "encoder": result.encoder["name"],
                **{f"encoder.{k}": v for k, v in result.encoder.items() if k != "name"}},
        metrics={"n_images": n, "embedding_dim": dim, "n_skipped": len(result.skipped),
                 "embed_seconds": result.seconds, "images_per_second": result.images_per_second,
                 "wall_seconds": wall_seconds},
        tags={"cache_hit": str(result.cache_hit).lower(), "dataset_name": result.dataset,
              "device_used": result.device},
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.npz"
        arrays = {"X": result.vectors, "ids": result.ids.astype(str)}
        if result.labels is not None:
            arrays["y"] = result.labels
        np.savez_compressed(path, **arrays)
        mlflow.log_artifact(str(path))
        if result.skipped:
            skipped = Path(tmp) / "skipped.txt"
            skipped.write_text("\n".join(result.skipped) + "\n")
            mlflow.log_artifact(str(skipped))
    logger.info("%s × %s embeddings from %s in %.1f s (%.0f images/s, cache %s)", n, dim,
                result.encoder["name"], result.seconds, result.images_per_second,
                "hit" if result.cache_hit else "miss")


@dataclass
class TuneResult:
    study: optuna.Study
    parent_run_id: str
    metrics: dict
    work: dict


def tune_job(dataset: str = "digits", encoder: str = "raw", checkpoint: str = "", n_trials: int = 30,
             timeout: float = 0.0, seed: int = 0, clusterers: str = "all", study_name: str = "",
             storage: str = "", objective: str = DEFAULT_OBJECTIVE, compare: str = "") -> TuneResult:
    """One Optuna study for one (data set, encoder): a parent MLflow run and a nested run per trial.

    ``objective`` is the registered label-free objective the study maximises; ``compare`` (a comma
    list, or "all") names others scored beside it on every trial, for benchmarks.
    """
    import optuna

    from selector import reports, search
    from selector.clustering import parse_clusterers
    from selector.embedding import cache_dir
    from selector.objective import OBJECTIVES, eval_space_params, get_objective, paper_recipe
    from selector.reduction import ReductionCache

    started = time.perf_counter()

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
    if len(data) < search.MIN_TUNE_POINTS:
        raise ValueError(f"dataset {dataset!r} has {len(data)} points; clustering needs at least "
                         f"{search.MIN_TUNE_POINTS}.")
    embedded = embed(data, encoder, checkpoint=checkpoint)
    if len(embedded.vectors) < search.MIN_TUNE_POINTS:
        raise ValueError(f"only {len(embedded.vectors)} of {dataset!r}'s points could be embedded; "
                         f"clustering needs at least {search.MIN_TUNE_POINTS}.")
    if np.ptp(embedded.vectors, axis=0).max() == 0:
        raise ValueError(f"every vector of {dataset!r} under encoder {encoder!r} is the same: nothing to cluster.")

    key = embedded.key
    identity = {"dataset": data.name, "encoder": encoder, "embedding_key": key, "objective": objective}
    study_name = study_name or f"{data.name}-{encoder}-{objective}-{key[:8]}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with search.study_lock(storage):  # workers starting together create tables and the study once
        tracking.configure_tracking()
        mlflow.tracking.MlflowClient().search_experiments(max_results=1)  # creates a new store's tables
        study = search.open_study(study_name, storage, int(seed), identity)
    with mlflow.start_run(run_name=f"tune-{study_name}", nested=mlflow.active_run() is not None) as run:
        with search.study_lock(storage):  # one parent run and one set of starting points per study
            parent = resolve_parent_run(study, run.info.run_id)
            if parent != run.info.run_id:  # a joining worker: its own random stream (a lone worker stays reproducible)
                study.sampler = search.make_sampler(int(seed), worker=run.info.run_id)
            if not study.trials:
                for point in search.starting_points(names, eval_space_params(embedded.vectors)):
                    study.enqueue_trial(point, skip_if_exists=True)
        base = {"dataset": dataset, "encoder": encoder}
        tracking.log_batch(params={**base, "checkpoint": checkpoint, "n_trials": n_trials, "seed": seed,
                                   "clusterers": ",".join(names), "storage": storage or search.DEFAULT_JOURNAL,
                                   "study_name": study_name, "objective": objective},
                           tags={"optuna_study_name": study_name, "study_parent_run_id": parent,
                                 "objective": objective})
        ctx = search.SearchContext(
            vectors=embedded.vectors, labels=embedded.labels, clusterers=names, seed=int(seed),
            cache=ReductionCache(cache_dir().parent / "reductions", key), base_params=base,
            experiment_id=run.info.experiment_id, parent_run_id=parent, worker_run_id=run.info.run_id,
            objective=objective, compare=compared)
        study.optimize(lambda trial: search.objective(trial, ctx), n_trials=int(n_trials),
                       timeout=float(timeout) or None, catch=(Exception,), show_progress_bar=True)
        metrics, tags = search.summarize(study)
        # For reference only (it needs the true number of classes): the seed paper's fixed recipe.
        try:
            metrics.update(paper_recipe(ctx.eval_space, ctx.labels, objective, int(seed)))
        except Exception as exc:  # a reference number must not cost the study its summary
            logger.warning("the paper recipe could not be evaluated: %s: %s", type(exc).__name__, exc)
        # What this worker computed (rather than found in a cache): the cost side of the study.
        work = {"embed_seconds": 0.0 if embedded.cache_hit else embedded.seconds,
                "eval_space_seconds": ctx.eval_space_seconds, "reductions_fitted": ctx.cache.fits,
                "neighbour_graphs_built": ctx.cache.graph_builds}
        tracking.log_batch(metrics=work, run_id=run.info.run_id)
        for run_id in {parent, run.info.run_id}:
            tracking.log_batch(metrics=metrics, tags=tags, run_id=run_id)
        if parent != run.info.run_id:
            reopen_killed_parent(parent, run.info.run_id)
        if metrics["n_trials_complete"]:
            work["worker_wall_seconds"] = time.perf_counter() - started
            try:
                reports.log_study_report(study, ctx, embedded, run_id=parent, data=data, work=work,
                                         paper={k: v for k, v in metrics.items() if k.startswith("paper_recipe")})
            except Exception as exc:  # the study is done and summarised; a failed plot is reported, not fatal
                logger.warning("the study report failed: %s: %s", type(exc).__name__, exc)
                tracking.log_batch(tags={"report_error": f"{type(exc).__name__}: {exc}"}, run_id=parent)
        print(reports.terminal_summary(study_name, metrics, parent, run.info.experiment_id, objective))
    return TuneResult(study=study, parent_run_id=parent, metrics=metrics, work=work)


def reopen_killed_parent(parent: str, run_id: str) -> None:
    """The study's parent run was its first worker's run; if that worker was killed, the parent was
    marked KILLED with it. A later worker that finishes the study's work marks it FINISHED again."""
    client = mlflow.tracking.MlflowClient()
    if client.get_run(parent).info.status in ("KILLED", "FAILED"):
        client.set_tag(parent, "study_finished_by_run_id", run_id)
        client.set_terminated(parent, status="FINISHED")


def resolve_parent_run(study, run_id: str) -> str:
    """The study's one parent run: kept with the study, so later workers hang their trials under it."""
    from selector.search import PARENT_ATTR

    known = study.user_attrs.get(PARENT_ATTR)
    if known:
        try:
            mlflow.tracking.MlflowClient().get_run(known)
            return known
        except mlflow.exceptions.MlflowException:
            logger.warning("the study's parent run %s is not in this tracking store; this run takes over", known)
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id

