"""The `select` job: tune every encoder, register the best label-free, log the leaderboard."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from selector.study import reports, tracking

from selector import retry
from selector.stages.embedding import embed_many
from selector.jobs.register import register_job
from selector.stages.objective import DEFAULT_OBJECTIVE, ObjectiveSpec
from selector.study.alternatives import chosen_trial
from selector.study.request import StudyRequest
from selector.study.runner import run_study

logger = logging.getLogger(__name__)


def select_job(dataset: str = "digits", encoders: str = "raw,efficientnet_lite0", n_trials: int = 30,
               model_name: str = "digits-clusters", objective: str = DEFAULT_OBJECTIVE, workers: int = 0,
               labels: str = "auto"):
    """Tune every encoder by ``objective`` (each study in ``workers`` processes), pick the best label-free
    score, register it; log the leaderboard. An encoder may name a layer (``efficientnet_lite0@stage4``):
    (encoder, layer) pairs compete like encoders.

    Each encoder's study has its own evaluation space. The encoders are compared by how well each
    study's chosen clustering holds in every study's space (the mean of the objective over the spaces,
    ``cross_objective_value``); when the studies do not cover the same points (an encoder could not read
    some files) or a study has no ``clusters.csv``, by the objective's value in its own space
    (docs/objective.md, "Picking the encoder").
    """
    names = [name.strip() for name in str(encoders).split(",") if name.strip()]
    if not names:
        raise ValueError(f"`encoders` must name at least one encoder; got {encoders!r}.")
    first = StudyRequest.resolve(dataset, names[0], n_trials=n_trials, objective=objective, workers=workers,
                                 labels=labels)
    requests = [first] + [first.with_encoder(name) for name in names[1:]]
    data, spec = first.data, first.objective
    objective = spec.name
    # Layers of one network (NAME, NAME@stage3, …) are embedded in one forward pass, then cached.
    embedded = embed_many(data, names)
    tracking.configure_tracking()
    with retry.call(mlflow.start_run, run_name=f"select-{data.name}", nested=mlflow.active_run() is not None) as run:
        rows, spaces = [], {}
        for name, request in zip(names, requests):
            result = run_study(request)
            spaces[name] = request.eval_space
            best = chosen_trial(result.study)
            rows.append({"encoder": name, "objective": objective,
                         "best_objective_value": result.metrics.get("best_objective_value"),
                         "best_silhouette_umap": result.metrics.get("best_silhouette_umap"),
                         "clusterer": best.params.get("clusterer"), "n_clusters": best.user_attrs.get("n_clusters"),
                         "choice_margin": result.metrics.get("choice_margin"),
                         "best_ami": result.metrics.get("best_ami"), "oracle_ami": result.metrics.get("oracle_ami"),
                         "selection_regret": result.metrics.get("selection_regret"),
                         "paper_recipe_ami": result.metrics.get("paper_recipe_ami"),
                         "study_run_id": result.parent_run_id})
        board = pd.DataFrame(rows)
        cross = cross_space(data, names, board["study_run_id"].tolist(), spec, embedded, spaces) \
            if len(names) > 1 else None
        board["cross_objective_value"] = [cross[name] for name in names] if cross else float("nan")
        rule = "cross_objective_value" if cross else "best_objective_value"
        board = board.sort_values(rule, ascending=False).reset_index(drop=True)
        board["chosen"] = board.index == 0
        winner = board.iloc[0]
        registration = register_job(winner["study_run_id"], model_name=model_name)
        with tempfile.TemporaryDirectory() as tmp:
            board.to_csv(Path(tmp) / "leaderboard.csv", index=False)
            (Path(tmp) / "report.html").write_text(reports.select_page(board, data.name, rule), encoding="utf-8")
            retry.call(mlflow.log_artifacts, tmp)
        metrics = {"best_objective_value": winner["best_objective_value"],
                   "best_silhouette_umap": winner["best_silhouette_umap"]}
        if board["best_ami"].notna().all():
            metrics.update(best_ami=winner["best_ami"], oracle_encoder_ami=board["best_ami"].max())
        tracking.log_batch(
            params={"dataset": dataset, "encoders": ",".join(names), "n_trials": n_trials, "model_name": model_name,
                    "objective": objective, "labels": labels},
            metrics=metrics,
            tags={"objective": objective, "encoder_rule": rule, "winner_encoder": winner["encoder"], "winner_study_run_id": winner["study_run_id"],
                  "registered_version": registration.version, "promoted": str(registration.promoted).lower()})
    print(board.drop(columns=["study_run_id", "objective"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"objective: {objective}")
    print(f"select run {run.info.run_id}; winner {winner['encoder']} → {model_name} version {registration.version}")
    print(f"report: {reports.ui_address(run.info.experiment_id, run.info.run_id)} (artifact report.html)")
    return board, registration


def cross_space(data, names: list[str], study_run_ids: list[str], objective: ObjectiveSpec,
                embedded: list | None = None, spaces: dict | None = None) -> dict[str, float] | None:
    """Each study's chosen clustering (its ``clusters.csv``) scored in every study's evaluation space
    (``selector.stages.objective.cross_space_values``); None, with a warning, when they cannot be compared.
    ``embedded``: the encoders' embeddings and ``spaces`` the studies' evaluation spaces (by encoder)
    when the caller has them; else they are read from the cache."""
    from selector.study.request import study_eval_space
    from selector.stages.objective import cross_space_values

    built, spaces, partitions, ids = spaces or {}, {}, {}, None
    for name, run_id, embedded in zip(names, study_run_ids, embedded or embed_many(data, names)):
        if ids is None:
            ids = embedded.ids
        elif len(embedded.ids) != len(ids) or (np.asarray(embedded.ids) != np.asarray(ids)).any():
            logger.warning("the encoders embedded different files; comparing them by their own objective values")
            return None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                table = pd.read_csv(retry.call(mlflow.artifacts.download_artifacts, run_id=run_id,
                                               artifact_path=reports.CLUSTERS_FILE, dst_path=tmp))
        except Exception as exc:
            logger.warning("study %s has no readable %s (%s); comparing encoders by their own objective values",
                           run_id, reports.CLUSTERS_FILE, exc)
            return None
        order = pd.Series(np.arange(len(table)), index=table["id"].astype(str))
        wanted = np.asarray(ids).astype(str)
        if len(table) != len(wanted) or not order.index.is_unique or not np.isin(wanted, order.index).all():
            logger.warning("study %s's %s does not list the embedded points; comparing encoders by their own "
                           "objective values", run_id, reports.CLUSTERS_FILE)
            return None
        partitions[name] = table["cluster"].to_numpy()[order[wanted].to_numpy()]
        spaces[name] = built.get(name) or study_eval_space(embedded, 0)  # the study's seed
    return cross_space_values(spaces, partitions, objective)
