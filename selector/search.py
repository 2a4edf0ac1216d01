"""One trial of the search over reduce→cluster pipelines, logged as a nested MLflow run.

Only the label-free objective goes back to Optuna; AMI/ARI/NMI are computed beside it for the
record. The study around the trials (storage, set-up, parent run) is ``selector.study``'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import optuna
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from selector import retry, tracking
from selector.clustering import ClusterModel, Declined, suggest_clusterer
from selector.objective import (DEFAULT_OBJECTIVE, EVAL_SPACE, EvalSpace, build_eval_space, get_objective,
                                silhouette_objective, validation_metrics)
from selector.reduction import ReductionCache, suggest_reducer

logger = logging.getLogger(__name__)

MIN_TUNE_POINTS = 10


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
    # The evaluation space is built (or read from the cache) when first asked for: a worker that joins
    # a study fits its first pipeline while another process is still building it.
    _eval_space: EvalSpace | None = field(init=False, default=None, repr=False)
    # The best trial this worker scored (number, value, reduced points, fitted model): the report and
    # the study's ``clusters.csv`` need them, and refitting costs a whole trial.
    best_seen: tuple[int, float, np.ndarray, ClusterModel] | None = field(init=False, default=None)

    def __post_init__(self):
        get_objective(self.objective)
        for name in self.compare:
            get_objective(name)

    @property
    def eval_space(self) -> EvalSpace:
        if self._eval_space is None:
            self._eval_space = build_eval_space(self.vectors, self.cache, self.seed)
        return self._eval_space


def score_trial(ctx: SearchContext, labels: np.ndarray) -> tuple[float, dict, dict]:
    """The objective's value, the trial's label-free metrics (``objective_value``, ``silhouette_umap``
    for reference, the objective's parts, ``objective.<name>`` for ``compare``) and its tags."""
    start = time.perf_counter()
    score = get_objective(ctx.objective).score(ctx.eval_space, labels, ctx.seed)
    objective_seconds = time.perf_counter() - start
    # The seed paper's silhouette, logged on every trial for reference (−1 when the labels are
    # degenerate, as it scores them): among the objective's parts when it computed it, else here.
    reference = {}
    if "silhouette_umap" not in score.parts:
        seed_paper = silhouette_objective(ctx.eval_space.coords, labels, seed=ctx.seed)
        reference = {**seed_paper.parts, "silhouette_umap": seed_paper.value}
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


def trial_fit(ctx: SearchContext, trial: optuna.trial.FrozenTrial) -> tuple[np.ndarray, ClusterModel]:
    """A complete trial's reduced points and fitted clusterer: kept from scoring when this worker
    found the best trial, else refitted (through the study's cache) — another worker may have found it."""
    if ctx.best_seen is not None and ctx.best_seen[0] == trial.number:
        return ctx.best_seen[2], ctx.best_seen[3]
    return fit_pipeline(ctx, trial.params)


def objective(trial: optuna.Trial, ctx: SearchContext) -> float:
    """Build one pipeline, score it label-free, log it as a nested run; returns the objective only."""
    n, dim = ctx.vectors.shape
    reducer = suggest_reducer(trial, n, dim)
    clusterer = suggest_clusterer(trial, n, ctx.clusterers)
    client = retry.client()
    run = client.create_run(ctx.experiment_id, tags={
        MLFLOW_PARENT_RUN_ID: ctx.parent_run_id, MLFLOW_RUN_NAME: f"trial-{trial.number}",
        "optuna_trial_number": str(trial.number), "optuna_study_name": trial.study.study_name})
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    if ctx.worker_run_id:
        trial.set_user_attr("worker_run_id", ctx.worker_run_id)
    params = {**ctx.base_params, **flat_params(reducer, clusterer)}
    try:
        timings: dict = {}
        reduced, model = fit_pipeline(ctx, trial.params, timings)
        objective_value, scores, tags = score_trial(ctx, model.labels_)
        validation = validation_metrics(ctx.labels, model.labels_)
        metrics = {**scores, "fit_seconds": timings["reduce_seconds"] + timings["cluster_seconds"], **timings,
                   "clusterer_fit_sample": model.fit_sample_size_, **validation}
        tracking.log_batch(params=params, metrics=metrics, tags=tags, run_id=run.info.run_id, new_run=True)
        for key, value in {**metrics, **{k: v for k, v in tags.items() if v is not None}}.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if ctx.best_seen is None or objective_value > ctx.best_seen[1]:
            ctx.best_seen = (trial.number, objective_value, reduced, model)
    except Declined as exc:
        logger.debug("trial %d pruned: %s", trial.number, exc)
        tracking.log_batch(params=params, tags={"declined": str(exc)}, run_id=run.info.run_id, new_run=True)
        client.set_terminated(run.info.run_id, status="FINISHED")
        raise optuna.TrialPruned(str(exc)) from exc
    except Exception as exc:
        tracking.log_batch(params=params, tags={"error": f"{type(exc).__name__}: {exc}"}, run_id=run.info.run_id,
                           new_run=True)
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    except BaseException:  # Ctrl-C, or SIGTERM (``cli.run`` turns it into KeyboardInterrupt): Optuna marks the trial FAIL
        client.set_tag(run.info.run_id, "error", "interrupted (Ctrl-C or SIGTERM) during the trial")
        client.set_terminated(run.info.run_id, status="KILLED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")
    return objective_value


