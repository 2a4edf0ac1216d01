"""One trial of the search over reduce→cluster pipelines: a pure evaluation, watched by observers.

``evaluate(context, params)`` fits and scores one pipeline and returns a ``TrialResult``; it writes
nothing anywhere. ``run_trial`` is what Optuna calls: it draws the parameters, evaluates them, keeps
the results on the Optuna trial and tells the study's observers (``TrialObserver``), which is where
MLflow comes in (``selector.study.tracking.TrialRuns``) — a study with no observer needs no tracking store.
Only the label-free objective goes back to Optuna; AMI/ARI/NMI are computed beside it for the record.
The study around the trials (storage, set-up, parent run) is ``selector.study.session``'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import optuna

from selector.stages.clustering import ClusterModel, Declined, suggest_clusterer
from selector.stages.objective import (DEFAULT_OBJECTIVE, EVAL_SPACE, EvalSpace, ObjectiveSpec, build_eval_space,
                                       get_objective, silhouette_objective, validation_metrics)
from selector.stages.reduction import ReductionCache, suggest_reducer

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

    ``objective`` is the one score that goes back to Optuna; ``compare`` are other registered
    objectives scored on every trial beside it (logged as ``objective.<name>``), which is how the
    selection benchmark compares them on the same trials. Both are specs (``ObjectiveSpec``) resolved
    by the study's request; a name, for a caller that builds a context by hand, is resolved here once.
    ``eval_space``: the study's evaluation space when the caller built it; otherwise it is built (or
    read from the cache) when first asked for — a worker that joins a study fits its first pipeline
    while another process is still building it.
    """

    vectors: np.ndarray
    labels: np.ndarray | None
    clusterers: list[str]
    seed: int
    cache: ReductionCache
    objective: ObjectiveSpec | str = DEFAULT_OBJECTIVE
    compare: tuple[ObjectiveSpec | str, ...] = ()
    eval_space_: EvalSpace | None = field(default=None, repr=False)
    # The best trial this worker scored (number, value, reduced points, fitted model): the report and
    # the study's ``clusters.csv`` need them, and refitting costs a whole trial.
    best_seen: tuple[int, float, np.ndarray, ClusterModel] | None = field(init=False, default=None)

    def __post_init__(self):
        if isinstance(self.objective, str):
            self.objective = get_objective(self.objective)
        self.compare = tuple(get_objective(c) if isinstance(c, str) else c for c in self.compare)

    @property
    def eval_space(self) -> EvalSpace:
        if self.eval_space_ is None:
            self.eval_space_ = build_eval_space(self.vectors, self.cache, self.seed)
        return self.eval_space_


def score_trial(ctx: SearchContext, labels: np.ndarray) -> tuple[float, dict, dict]:
    """The objective's value, the trial's label-free metrics (``objective_value``, ``silhouette_umap``
    for reference, the objective's parts, ``objective.<name>`` for ``compare``) and its tags."""
    start = time.perf_counter()
    score = ctx.objective.score(ctx.eval_space, labels, ctx.seed)
    objective_seconds = time.perf_counter() - start
    # The seed paper's silhouette, logged on every trial for reference (−1 when the labels are
    # degenerate, as it scores them): among the objective's parts when it computed it, else here.
    reference = {}
    if "silhouette_umap" not in score.parts:
        seed_paper = silhouette_objective(ctx.eval_space.coords, labels, seed=ctx.seed)
        reference = {**seed_paper.parts, "silhouette_umap": seed_paper.value}
    metrics = {"objective_value": score.value, "n_clusters": score.n_clusters, "noise_fraction": score.noise_fraction,
               "objective_seconds": objective_seconds, **reference, **score.parts}
    for other in ctx.compare:
        metrics[f"objective.{other.name}"] = other.score(ctx.eval_space, labels, ctx.seed).value
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


@dataclass
class TrialResult:
    """What one pipeline gave: its labels and the objective's ``value``; ``metrics``: the label-free
    scores (the objective's parts, the seed paper's silhouette), the stages' seconds and, when the
    context has labels, AMI/ARI/NMI; ``tags``: how it was scored. ``reduced`` and ``model`` are the
    fitted pipeline, for a caller that wants to place more points."""

    params: dict
    value: float
    labels: np.ndarray
    metrics: dict
    tags: dict
    reduced: np.ndarray = field(repr=False)
    model: ClusterModel = field(repr=False)


def evaluate(ctx: SearchContext, params: dict) -> TrialResult:
    """Fit and score the pipeline of flat ``params`` (``reducer``, ``reducer.x``, ``clusterer``, …) in
    the context's evaluation space. Pure: it writes nothing but the study's reduction cache; a
    clusterer that refuses the request at a sane cost raises ``Declined``."""
    timings: dict = {}
    reduced, model = fit_pipeline(ctx, params, timings)
    value, scores, tags = score_trial(ctx, model.labels_)
    metrics = {**scores, "fit_seconds": timings["reduce_seconds"] + timings["cluster_seconds"], **timings,
               "clusterer_fit_sample": model.fit_sample_size_, **validation_metrics(ctx.labels, model.labels_)}
    return TrialResult(dict(params), value, model.labels_, metrics, tags, reduced, model)


class TrialObserver:
    """Sees the trials of a study as they happen; every hook does nothing unless overridden. A hook
    that raises fails the trial (Optuna records it as FAIL and the study goes on)."""

    def started(self, trial: optuna.Trial, params: dict) -> None:
        """The trial's parameters are drawn; nothing is fitted yet."""

    def finished(self, trial: optuna.Trial, result: TrialResult) -> None:
        """The trial is scored; its metrics are already on ``trial.user_attrs``."""

    def declined(self, trial: optuna.Trial, params: dict, reason: str) -> None:
        """A clusterer refused the parameters at a sane cost: Optuna prunes the trial."""

    def failed(self, trial: optuna.Trial, params: dict, error: Exception) -> None:
        """The pipeline raised; the error goes on to Optuna."""

    def interrupted(self, trial: optuna.Trial) -> None:
        """Ctrl-C or SIGTERM during the trial."""


def run_trial(trial: optuna.Trial, ctx: SearchContext, observers: Sequence[TrialObserver] = ()) -> float:
    """What Optuna calls: draw a pipeline, evaluate it label-free, keep its metrics on the trial and
    tell the observers; returns the objective's value only."""
    params = begin_trial(trial, ctx, observers)
    return finish_trial(trial, ctx, params, lambda: evaluate(ctx, trial.params), observers)


def begin_trial(trial: optuna.Trial, ctx: SearchContext, observers: Sequence[TrialObserver] = ()) -> dict:
    """Draw the trial's pipeline (its parameters are then fixed on the trial) and tell the observers."""
    n, dim = ctx.vectors.shape
    params = flat_params(suggest_reducer(trial, n, dim), suggest_clusterer(trial, n, ctx.clusterers))
    for observer in observers:
        observer.started(trial, params)
    return params


def finish_trial(trial: optuna.Trial, ctx: SearchContext, params: dict, result_of: Callable[[], TrialResult],
                 observers: Sequence[TrialObserver] = ()) -> float:
    """``result_of()`` — the trial's evaluation, here or in another process — kept on the trial and told
    to the observers; a declined trial raises ``optuna.TrialPruned``, a failed one its error."""
    try:
        result = result_of()
        for key, value in {**result.metrics, **result.tags}.items():
            if value is not None:
                trial.set_user_attr(key, value)
        for observer in observers:
            observer.finished(trial, result)
    except Declined as exc:
        logger.debug("trial %d pruned: %s", trial.number, exc)
        for observer in observers:
            observer.declined(trial, params, str(exc))
        raise optuna.TrialPruned(str(exc)) from exc
    except Exception as exc:
        for observer in observers:
            observer.failed(trial, params, exc)
        raise
    except BaseException:  # Ctrl-C, or SIGTERM (``cli.run`` turns it into KeyboardInterrupt): Optuna marks the trial FAIL
        for observer in observers:
            observer.interrupted(trial)
        raise
    if ctx.best_seen is None or result.value > ctx.best_seen[1]:
        ctx.best_seen = (trial.number, result.value, result.reduced, result.model)
    return result.value
