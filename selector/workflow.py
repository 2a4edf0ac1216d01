"""Register, select and main: the jobs that turn studies into a served champion."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from selector import reports, tracking
from selector.data import load_dataset
from selector.embedding import check_embed_request, embed
from selector.jobs import embed_job, tune_job
from selector.objective import DEFAULT_OBJECTIVE, LEGACY_OBJECTIVE, get_objective
from selector.pipeline import FittedPipeline

logger = logging.getLogger(__name__)

EXAMPLE_ROWS = 2


def _study_runs(study_run_id: str):
    client = mlflow.tracking.MlflowClient()
    try:
        parent = client.get_run(study_run_id)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"`study_run_id` {study_run_id!r} is not a run in {mlflow.get_tracking_uri()}.") from None
    best_id = parent.data.tags.get("best_trial_run_id")
    if not best_id:
        raise ValueError(f"run {study_run_id!r} is not a study's parent run with a complete trial "
                         "(it has no `best_trial_run_id` tag).")
    return parent, client.get_run(best_id)


def _serving_encoder(embedded, data, checkpoint: str):
    """The encoder's config for serving and, for neural encoders, the weights to ship with it."""
    from selector.encoders import create_encoder

    config = dict(embedded.encoder)
    config.pop("checkpoint_sha256", None)
    if config["name"] == "none":
        return {**config, "feature_names": data.feature_names}, None
    if config["name"] == "raw":
        return config, None
    built = create_encoder(config["name"], checkpoint=checkpoint, image_size=config.get("image_size", 0), device="cpu")
    return config, built.model.state_dict()


def register_job(study_run_id: str, model_name: str = "digits-clusters", alias: str = "champion",
                 force: bool = False):
    """Refit a study's best pipeline on the full data, log it as a pyfunc model, register, promote."""
    from registry.promote import log_pipeline_model, register_and_promote
    from selector.search import pipeline_params

    if not str(model_name).strip() or not str(alias).strip():
        raise ValueError(f"`model_name` and `alias` must be non-empty; got {model_name!r}, {alias!r}.")
    tracking.configure_tracking()
    parent, best = _study_runs(study_run_id)
    study_params = parent.data.params
    dataset, encoder = study_params["dataset"], study_params["encoder"]
    checkpoint = study_params.get("checkpoint", "").strip("'")  # `mlflow run` logs an empty value as ''
    seed = int(study_params.get("seed", 0))
    data = load_dataset(dataset)
    embedded = embed(data, encoder, checkpoint=checkpoint)
    reducer, clusterer = pipeline_params(best.data.params)
    pipeline = FittedPipeline(reducer, clusterer, seed=seed).fit(embedded.vectors)
    assigned, _ = pipeline.predict(embedded.vectors)
    agreement = float((assigned == pipeline.labels_).mean())
    config, weights = _serving_encoder(embedded, data, checkpoint)
    example = (embedded.vectors[:EXAMPLE_ROWS] if data.kind == "vectors"
               else [data.images[i] for i in range(EXAMPLE_ROWS)])
    scores = best.data.metrics
    # Studies made before objectives were named optimised silhouette_umap and logged nothing else.
    objective = parent.data.tags.get("objective", LEGACY_OBJECTIVE)
    objective_value = scores.get("objective_value", scores["silhouette_umap"])
    with mlflow.start_run(run_name=f"register-{model_name}", nested=mlflow.active_run() is not None):
        info = log_pipeline_model(pipeline, config, weights, example)
        tags = {"dataset": dataset, "encoder": encoder, "objective": objective, "objective_value": objective_value,
                "silhouette_umap": scores["silhouette_umap"], "study_run_id": study_run_id, "ami": scores.get("ami"),
                "clusterer": clusterer["name"], "reducer": reducer["name"]}
        result = register_and_promote(info.model_uri, model_name, alias, tags, force=force)
        tracking.log_batch(
            params={"study_run_id": study_run_id, "model_name": model_name, "alias": alias, "force": force},
            metrics={"train_agreement": agreement, "objective_value": objective_value,
                     "silhouette_umap": scores["silhouette_umap"], "ami": scores.get("ami"),
                     "n_clusters": int(len(set(pipeline.labels_) - {-1}))},
            tags={"registered_version": result.version, "promoted": str(result.promoted).lower(),
                  "promotion_reason": result.reason})
    print(f"{model_name} version {result.version}: {'promoted to' if result.promoted else 'not'} "
          f"@{alias} ({result.reason}); training-set agreement {agreement:.3f}")
    return result


def select_job(dataset: str = "digits", encoders: str = "raw,efficientnet_lite0", n_trials: int = 30,
               model_name: str = "digits-clusters", objective: str = DEFAULT_OBJECTIVE):
    """Tune every encoder by ``objective``, pick the best label-free score, register it; log the leaderboard.

    Each encoder's study has its own evaluation space; the objective's value, which has no units,
    is what compares them (README, "The objective").
    """
    objective = get_objective(objective).name
    names = [name.strip() for name in str(encoders).split(",") if name.strip()]
    if not names:
        raise ValueError(f"`encoders` must name at least one encoder; got {encoders!r}.")
    if int(n_trials) < 1:
        raise ValueError(f"`n_trials` must be an int >= 1; got {n_trials}.")
    data = load_dataset(dataset)
    for name in names:
        check_embed_request(data, name)
    tracking.configure_tracking()
    with mlflow.start_run(run_name=f"select-{data.name}", nested=mlflow.active_run() is not None) as run:
        rows = []
        for name in names:
            result = tune_job(dataset=dataset, encoder=name, n_trials=n_trials, objective=objective)
            best = result.study.best_trial
            rows.append({"encoder": name, "objective": objective,
                         "best_objective_value": result.metrics.get("best_objective_value"),
                         "best_silhouette_umap": result.metrics.get("best_silhouette_umap"),
                         "clusterer": best.params.get("clusterer"), "n_clusters": best.user_attrs.get("n_clusters"),
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
            mlflow.log_artifacts(tmp)
        metrics = {"best_objective_value": winner["best_objective_value"],
                   "best_silhouette_umap": winner["best_silhouette_umap"]}
        if board["best_ami"].notna().all():
            metrics.update(best_ami=winner["best_ami"], oracle_encoder_ami=board["best_ami"].max())
        tracking.log_batch(
            params={"dataset": dataset, "encoders": ",".join(names), "n_trials": n_trials, "model_name": model_name,
                    "objective": objective},
            metrics=metrics,
            tags={"objective": objective, "winner_encoder": winner["encoder"], "winner_study_run_id": winner["study_run_id"],
                  "registered_version": registration.version, "promoted": str(registration.promoted).lower()})
    print(board.drop(columns=["study_run_id", "objective"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"objective: {objective}")
    print(f"select run {run.info.run_id}; winner {winner['encoder']} → {model_name} version {registration.version}")
    print(f"report: {reports.ui_address(run.info.experiment_id, run.info.run_id)} (artifact report.html)")
    return board, registration


def main_job(dataset: str = "digits", encoders: str = "raw,efficientnet_lite0", n_trials: int = 30,
             model_name: str = "digits-clusters", objective: str = DEFAULT_OBJECTIVE):
    """The README's demo: select on ``dataset``, then ask the registered champion about a few images."""
    board, _ = select_job(dataset=dataset, encoders=encoders, n_trials=n_trials, model_name=model_name,
                          objective=objective)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    data = load_dataset(dataset)
    picks = np.linspace(0, len(data) - 1, 5).astype(int)
    if data.kind == "images":
        from registry.promote import png_base64

        request = pd.DataFrame({"image": [png_base64(data.images[i]) for i in picks]})
    else:
        request = pd.DataFrame(data.vectors[picks], columns=data.feature_names)
    answer = model.predict(request)
    answer.insert(0, "id", data.ids[picks])
    if data.labels is not None:
        answer.insert(1, "true_label", data.labels[picks])
    print(f"models:/{model_name}@champion on {len(picks)} images:")
    print(answer.to_string(index=False))
    return answer


# Entry point name → job; tests check the MLproject defaults against these signatures.
ENTRY_POINTS = {"embed": embed_job, "tune": tune_job, "register": register_job, "select": select_job,
                "main": main_job}
