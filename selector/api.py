"""selector from Python: ``search`` runs one label-free study, ``select`` compares encoders.

    import selector
    result = selector.search("photos/", n_trials=30)          # a folder, an array, a DataFrame, …
    result.labels_, result.confidence_                        # every point's cluster and confidence
    result.report("report.html"); result.register("photos")   # the report; a registered model

Both run the same study as the ``tune`` and ``select`` jobs (``selector.study.runner``). With
``tracking=True`` (the default) the study is tracked in MLflow as the jobs track it — honouring
``MLFLOW_TRACKING_URI``, else ``./mlflow.db`` — and can be registered; with ``tracking=False`` nothing
is written but the cache (embeddings and reductions, under ``$SELECTOR_CACHE_DIR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from selector.stages.objective import DEFAULT_OBJECTIVE
from selector.study.alternatives import chosen_trial

IMAGE_ENCODER = "efficientnet_lite0"  # pretrained ImageNet weights that ship with the package


class SearchResult:
    """One study's outcome. ``labels_`` (−1 = noise) and ``confidence_`` are the chosen clustering of
    every point that could be embedded (``ids_`` says which); ``best_params_``, ``best_value_`` and
    ``n_clusters_`` describe the chosen trial; ``study_`` is the Optuna study, ``metrics_`` its summary
    (AMI and regret too when labels were given — for reporting only); ``run_id_`` the study's MLflow
    parent run (None when untracked). ``pipeline_`` is the chosen pipeline refitted on every vector,
    a scikit-learn estimator; ``predict(data)`` embeds new data with the study's encoder and places it."""

    def __init__(self, outcome):
        self._outcome = outcome
        request = outcome.request
        self.study_ = outcome.study
        self.metrics_ = dict(outcome.metrics)
        self.run_id_ = outcome.parent_run_id
        self.encoder = request.encoder
        self.objective = request.objective.name
        self.ids_ = np.asarray(request.embedded.ids)
        complete = self.metrics_.get("n_trials_complete", 0) > 0
        if not complete:
            raise RuntimeError(f"no trial of study {request.study_name!r} completed; every trial failed or was "
                               "declined (the study's trials say why: result.study_.trials).")
        best = chosen_trial(self.study_)
        self.best_params_ = dict(best.params)
        self.best_value_ = float(best.value)
        self.labels_ = np.asarray(outcome.labels)
        self.confidence_ = np.asarray(outcome.confidence)
        self.n_clusters_ = int(len(set(self.labels_.tolist()) - {-1}))
        self._pipeline = None

    def __repr__(self) -> str:
        return (f"SearchResult(encoder={self.encoder!r}, objective={self.objective!r}, "
                f"best_value_={self.best_value_:.4f}, n_clusters_={self.n_clusters_}, "
                f"clusterer={self.best_params_.get('clusterer')!r}, n_trials={len(self.study_.trials)})")

    @property
    def pipeline_(self):
        """The chosen pipeline refitted on every vector (``ClusterPipeline``: ``predict``, ``assign``)."""
        if self._pipeline is None:
            from selector.stages.pipeline import ClusterPipeline
            from selector.study.trials import pipeline_params

            reducer, clusterer = pipeline_params(self.best_params_)
            request = self._outcome.request
            self._pipeline = ClusterPipeline(reducer, clusterer, seed=request.seed).fit(request.embedded.vectors)
        return self._pipeline

    def clusters(self) -> pd.DataFrame:
        """Every point's ``id``, ``cluster`` and ``confidence`` (and ``label`` when known): ``clusters.csv``."""
        from selector.study.reports import clusters_table

        embedded = self._outcome.request.embedded
        return clusters_table(embedded.ids, self.labels_, self.confidence_, embedded.labels)

    def predict(self, data, return_confidence: bool = False):
        """Cluster ids of new data (of the kind the study was given), embedded with the study's encoder."""
        embedded = embed_new(data, self.encoder, self._outcome.request.checkpoint)
        if len(embedded.vectors) == 0:
            raise ValueError("none of the new points could be embedded.")
        labels, confidence = self.pipeline_.assign(embedded.vectors)
        return (labels, confidence) if return_confidence else labels

    def report(self, path: str | Path = "report.html") -> Path:
        """Write the study's report — one self-contained HTML page — to ``path``; returns the path."""
        import shutil
        import tempfile

        from selector.study.runner import write_report

        path = Path(path).expanduser()
        if path.is_dir():
            path = path / "report.html"
        outcome = self._outcome
        with tempfile.TemporaryDirectory() as tmp:
            page = write_report(Path(tmp), outcome.study, outcome.metrics, outcome.context, outcome.request,
                                outcome.work, labels=self.labels_)
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, path)
        return path

    def register(self, name: str, alias: str = "champion", force: bool = False, trial: int | None = None):
        """Register the chosen pipeline (or trial number ``trial``, an alternative) as an MLflow model
        ``name``, moving ``alias`` to it only if it beats the holder (``force`` moves it anyway).
        Needs a tracked study (``tracking=True``). Returns the registration (``version``, ``promoted``)."""
        if self.run_id_ is None:
            raise ValueError("register() needs a tracked study: the model registry is MLflow's. Run the search "
                             "with tracking=True.")
        from selector.jobs.register import _study_runs, register_trial
        from selector.study import tracking

        tracking.configure_tracking()
        parent, best = _study_runs(self.run_id_, "" if trial is None else str(trial))
        request = self._outcome.request
        return register_trial(parent, best, request.data, request.embedded, name, alias, force)


def search(data, encoder: str | None = None, n_trials: int = 30, objective: str = DEFAULT_OBJECTIVE, seed: int = 0,
           workers: int = 0, tracking: bool = True, *, labels=None, clusterers: str | Sequence[str] = "all",
           checkpoint: str = "", timeout: float = 0.0, storage: str = "", study_name: str = "",
           name: str | None = None, reproducible: bool = False, show: bool = True) -> SearchResult:
    """Find the best way to cluster ``data`` without labels: one Optuna study over reduce→cluster
    pipelines, maximising the label-free ``objective`` in one UMAP evaluation space.

    ``data``: a built-in name (``"digits"``), an image folder or vector file, a NumPy array (points ×
    features, or N×H×W[×3] images), a pandas DataFrame, or a list of image paths, PIL images or image
    arrays. ``encoder``: how images become vectors (default ``efficientnet_lite0`` for images; vectors
    are used as given, ``none``). ``labels``: true labels for validation only — AMI is reported beside
    the choice, never used to make it (for a path: ``auto``/``none``/a CSV, as the jobs take them).
    ``workers``: processes on this machine (0 = its cores). ``tracking``: log the study in MLflow (a
    parent run, a nested run per trial, the report) — or write nothing but the cache. ``name``: what
    the data set is called in runs and study names (default: the folder's or file's name, or the kind).
    ``reproducible``: with several workers, trials in batches asked of one sampler — the same trials
    every run (docs/operations.md).
    """
    from selector.stages.memory import as_dataset
    from selector.study.request import StudyRequest
    from selector.study.runner import run_study

    dataset = as_dataset(data, labels, name)
    request = StudyRequest.resolve(dataset, _encoder_for(dataset, encoder), checkpoint, n_trials, timeout, seed,
                                   clusterers, study_name, storage, objective, workers, labels=_labels_param(labels),
                                   reproducible=reproducible)
    return SearchResult(run_study(request, tracking=bool(tracking), show=show))


class SelectResult(SearchResult):
    """``select``'s outcome: the winning encoder's ``SearchResult`` (its attributes are this object's),
    ``leaderboard_`` (one row per encoder, the chosen one first) and ``results_`` (encoder → result)."""

    def __init__(self, results: dict, board: pd.DataFrame):
        winner = results[board["encoder"].iloc[0]]
        super().__init__(winner._outcome)
        self.results_ = results
        self.leaderboard_ = board

    def __repr__(self) -> str:
        return f"SelectResult(winner={self.encoder!r}, encoders={list(self.results_)}, best_value_={self.best_value_:.4f})"


def select(data, encoders: str | Sequence[str] = ("raw", IMAGE_ENCODER), n_trials: int = 30,
           objective: str = DEFAULT_OBJECTIVE, seed: int = 0, workers: int = 0, tracking: bool = True, *,
           labels=None, name: str | None = None, show: bool = True) -> SelectResult:
    """``search`` once per encoder, then the winner chosen without labels: each study's clustering is
    scored in every study's evaluation space and the highest mean wins (``cross_objective_value``, as
    the ``select`` job decides; docs/objective.md). An encoder may name a layer (``NAME@stageN``)."""
    from selector.stages.embedding import embed_many
    from selector.stages.memory import as_dataset
    from selector.study.request import StudyRequest
    from selector.study.runner import run_study

    names = [n.strip() for n in (encoders.split(",") if isinstance(encoders, str) else encoders) if n.strip()]
    if not names:
        raise ValueError(f"`encoders` must name at least one encoder; got {encoders!r}.")
    dataset = as_dataset(data, labels, name)
    first = StudyRequest.resolve(dataset, names[0], n_trials=n_trials, seed=seed, objective=objective,
                                 workers=workers, labels=_labels_param(labels))
    requests = [first] + [first.with_encoder(n) for n in names[1:]]  # every encoder checked before a study runs
    embed_many(dataset, names)  # layers of one network in one forward pass, then cached
    with _select_run(dataset.name, tracking) as run:  # tracked: the studies nest under one select run
        results = {request.encoder: SearchResult(run_study(request, tracking=bool(tracking), show=show))
                   for request in requests}
        board = _leaderboard(results, names, first, seed)
        if run is not None:
            _log_leaderboard(board, dataset.name, first)
    return SelectResult(results, board)


def _leaderboard(results: dict, names: list[str], first, seed: int) -> pd.DataFrame:
    """One row per encoder, the winner first: by ``cross_objective_value`` when the studies cover the same
    points, else by each study's own best value."""
    from selector.stages.objective import cross_space_values

    rows = [{"encoder": n, "best_objective_value": r.best_value_, "n_clusters": r.n_clusters_,
             "clusterer": r.best_params_.get("clusterer"), "best_ami": r.metrics_.get("best_ami"),
             "oracle_ami": r.metrics_.get("oracle_ami"), "study_run_id": r.run_id_} for n, r in results.items()]
    board = pd.DataFrame(rows)
    same_points = all(np.array_equal(r.ids_, results[names[0]].ids_) for r in results.values())
    if len(names) > 1 and same_points:
        spaces = {r.encoder: r._outcome.request.eval_space for r in results.values()}
        cross = cross_space_values(spaces, {n: r.labels_ for n, r in results.items()}, first.objective, int(seed))
        board["cross_objective_value"] = [cross[n] for n in board["encoder"]]
        rule = "cross_objective_value"
    else:
        board["cross_objective_value"] = float("nan")
        rule = "best_objective_value"
    board = board.sort_values(rule, ascending=False).reset_index(drop=True)
    board["chosen"] = board.index == 0
    board.attrs["rule"] = rule
    return board


def _select_run(name: str, tracking: bool):
    """A parent MLflow run for a tracked ``select`` (None untracked: MLflow is not even imported)."""
    import contextlib

    if not tracking:
        return contextlib.nullcontext(None)
    import mlflow

    from selector import retry
    from selector.study import tracking as tracked

    tracked.configure_tracking()
    return retry.call(mlflow.start_run, run_name=f"select-{name}", nested=mlflow.active_run() is not None)


def _log_leaderboard(board: pd.DataFrame, name: str, first) -> None:
    """The leaderboard and its page on the select run, as the ``select`` job logs them."""
    import tempfile

    import mlflow

    from selector import retry
    from selector.study import reports, tracking

    winner = board.iloc[0]
    with tempfile.TemporaryDirectory() as tmp:
        board.assign(objective=first.objective.name).to_csv(Path(tmp) / "leaderboard.csv", index=False)
        (Path(tmp) / "report.html").write_text(reports.select_page(board.assign(objective=first.objective.name), name,
                                                                   board.attrs["rule"]), encoding="utf-8")
        retry.call(mlflow.log_artifacts, tmp)
    tracking.log_batch(params={"dataset": name, "encoders": ",".join(board["encoder"]), "n_trials": first.n_trials,
                               "objective": first.objective.name},
                       metrics={"best_objective_value": winner["best_objective_value"]},
                       tags={"objective": first.objective.name, "encoder_rule": board.attrs["rule"],
                             "winner_encoder": winner["encoder"], "winner_study_run_id": winner["study_run_id"]})


def embed_new(data, encoder: str, checkpoint: str = ""):
    """New data of any kind ``search`` takes, embedded by ``encoder`` (no labels read, no progress bar)."""
    from selector.stages.embedding import embed
    from selector.stages.memory import as_dataset

    return embed(as_dataset(data, labels="none" if isinstance(data, (str, Path)) else None), encoder,
                 checkpoint=checkpoint, progress=False)


def _encoder_for(dataset, encoder: str | None) -> str:
    if encoder:
        return encoder
    return IMAGE_ENCODER if dataset.kind == "images" else "none"


def _labels_param(labels) -> str:
    """What the study run logs as ``labels``."""
    if labels is None:
        return "auto"
    return labels if isinstance(labels, str) else "given"
