"""The `select` job: tune every encoder, register the best label-free, log the leaderboard."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from selector import reports, retry, tracking
from selector.data import load_dataset
from selector.embedding import check_embed_request, embed_many
from selector.jobs.register import register_job
from selector.jobs.tune import tune_job
from selector.objective import DEFAULT_OBJECTIVE, get_objective

logger = logging.getLogger(__name__)


def select_job(dataset: str = "digits", encoders: str = "raw,efficientnet_lite0", n_trials: int = 30,
               model_name: str = "digits-clusters", objective: str = DEFAULT_OBJECTIVE, workers: int = 0,
               labels: str = "auto"):
    """Tune every encoder by ``objective`` (each study in ``workers`` processes), pick the best label-free
    score, register it; log the leaderboard. An encoder may name a layer (``efficientnet_lite0@stage4``):
    (encoder, layer) pairs compete like encoders.

    Each encoder's study has its own evaluation space; the objective's value, which has no units,
    is what compares them (docs/objective.md).
    """
    objective = get_objective(objective).name
    names = [name.strip() for name in str(encoders).split(",") if name.strip()]
    if not names:
        raise ValueError(f"`encoders` must name at least one encoder; got {encoders!r}.")
    if int(n_trials) < 1:
        raise ValueError(f"`n_trials` must be an int >= 1; got {n_trials}.")
    data = load_dataset(dataset, labels)
    for name in names:
        check_embed_request(data, name)
    # Layers of one network (NAME, NAME@stage3, …) are embedded in one forward pass, then cached.
    embed_many(data, names)
    tracking.configure_tracking()
    with retry.call(mlflow.start_run, run_name=f"select-{data.name}", nested=mlflow.active_run() is not None) as run:
        rows = []
        for name in names:
            result = tune_job(dataset=dataset, encoder=name, n_trials=n_trials, objective=objective, workers=workers,
                              labels=labels)
            best = result.study.best_trial
            rows.append({"encoder": name, "objective": objective,
                         "best_objective_value": result.metrics.get("best_objective_value"),
                         "best_silhouette_umap": result.metrics.get("best_silhouette_umap"),
                         "clusterer": best.params.get("clusterer"), "n_clusters": best.user_attrs.get("n_clusters"),
                         "choice_margin": result.metrics.get("choice_margin"),
                         "best_ami": result.metrics.get("best_ami"), "oracle_ami": result.metrics.get("oracle_ami"),
                         "selection_regret": result.metrics.get("selection_regret"),
                         "paper_recipe_ami": result.metrics.get("paper_recipe_ami"),
                         "study_run_id": result.parent_run_id})
        board = pd.DataFrame(rows).sort_values("best_objective_value", ascending=False).reset_index(drop=True)
        board["chosen"] = board.index == 0
        winner = board.iloc[0]
        registration = register_job(winner["study_run_id"], model_name=model_name)
        with tempfile.TemporaryDirectory() as tmp:
            board.to_csv(Path(tmp) / "leaderboard.csv", index=False)
            (Path(tmp) / "report.html").write_text(reports.select_page(board, data.name), encoding="utf-8")
            retry.call(mlflow.log_artifacts, tmp)
        metrics = {"best_objective_value": winner["best_objective_value"],
                   "best_silhouette_umap": winner["best_silhouette_umap"]}
        if board["best_ami"].notna().all():
            metrics.update(best_ami=winner["best_ami"], oracle_encoder_ami=board["best_ami"].max())
        tracking.log_batch(
            params={"dataset": dataset, "encoders": ",".join(names), "n_trials": n_trials, "model_name": model_name,
                    "objective": objective, "labels": labels},
            metrics=metrics,
            tags={"objective": objective, "winner_encoder": winner["encoder"], "winner_study_run_id": winner["study_run_id"],
                  "registered_version": registration.version, "promoted": str(registration.promoted).lower()})
    print(board.drop(columns=["study_run_id", "objective"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"objective: {objective}")
    print(f"select run {run.info.run_id}; winner {winner['encoder']} → {model_name} version {registration.version}")
    print(f"report: {reports.ui_address(run.info.experiment_id, run.info.run_id)} (artifact report.html)")
    return board, registration
