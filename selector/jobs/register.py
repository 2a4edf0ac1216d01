"""The `register` job: a study's best pipeline, refitted, logged as a pyfunc model, registered, promoted."""

from __future__ import annotations

import logging

import mlflow

from selector import reports, tracking
from selector.data import load_dataset
from selector.embedding import embed
from selector.encoders import serving_files
from selector.objective import LEGACY_OBJECTIVE
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
    try:
        best = client.get_run(best_id)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"study run {study_run_id!r} names {best_id!r} as its best trial, but that run is not in "
                         f"{tracking.mask_url(mlflow.get_tracking_uri())}: the study's trials were logged to another "
                         "tracking store. Register it with MLFLOW_TRACKING_URI set to that store.") from None
    return parent, best


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
    assigned, confidence = pipeline.predict(embedded.vectors)  # what the served model answers for them
    agreement = float((assigned == pipeline.labels_).mean())
    config, weights = serving_files(embedded.encoder, checkpoint)
    if data.kind == "vectors":  # the served model takes the training file's columns
        config["feature_names"] = data.feature_names
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
        reports.log_clusters(reports.clusters_table(embedded.ids, assigned, confidence, embedded.labels),
                             mlflow.active_run().info.run_id)
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
