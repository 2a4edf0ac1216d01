"""The `register` job: a study's best pipeline, refitted, logged as a pyfunc model, registered, promoted."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow

from selector.study import reports, tracking

from selector import retry
from selector.stages.data import load_dataset
from selector.stages.embedding import embed
from selector.stages.encoders import serving_files
from selector.stages.objective import LEGACY_OBJECTIVE
from selector.stages.pipeline import ClusterPipeline

logger = logging.getLogger(__name__)

EXAMPLE_ROWS = 2


def _study_runs(study_run_id: str, trial: str = ""):
    """The study's parent run and the trial run to register: its choice, or trial number ``trial``."""
    client = retry.client()
    try:
        parent = client.get_run(study_run_id)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"`study_run_id` {study_run_id!r} is not a run in {mlflow.get_tracking_uri()}.") from None
    if str(trial).strip():
        return parent, _trial_run(client, parent, str(trial).strip())
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


def _trial_run(client, parent, trial: str):
    """The finished nested run of trial number ``trial`` under the study's parent run."""
    if not trial.isdigit():
        raise ValueError(f"`trial` must be a trial number (an int >= 0, as in alternatives.csv) or empty for the "
                         f"study's choice; got {trial!r}.")
    runs = client.search_runs([parent.info.experiment_id], max_results=5,
                              filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and "
                                            f"tags.optuna_trial_number = '{int(trial)}' and "
                                            "attributes.status = 'FINISHED'")
    scored = [run for run in runs if "objective_value" in run.data.metrics or "silhouette_umap" in run.data.metrics]
    if not scored:
        raise ValueError(f"study run {parent.info.run_id!r} has no finished, scored trial number {int(trial)} "
                         "(alternatives.csv, beside the study's report, lists the ones worth registering).")
    return scored[0]


def trial_params(parent, trial_run) -> dict:
    """The registered trial's parameters as its Optuna study holds them (typed); read back from MLflow's
    strings (``typed``) only when the study's storage cannot be read here (moved, or another machine's)."""
    import optuna

    from selector.stages.pipeline import typed
    from selector.study.session import optuna_experimental

    storage = parent.data.params.get("storage", "").strip("'")
    name = parent.data.params.get("study_name") or parent.data.tags.get("optuna_study_name")
    number = trial_run.data.tags.get("optuna_trial_number")
    try:
        if not storage or not name or number is None:
            raise LookupError("the study run names no storage, study or trial number")
        if "://" not in storage and not Path(storage).is_file():
            raise LookupError(f"no journal at {storage}")  # opening one would create it
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with optuna_experimental("heartbeat"):
            study = optuna.load_study(study_name=name, storage=storage if "://" in storage else
                                      optuna.storages.JournalStorage(
                                          optuna.storages.journal.JournalFileBackend(storage)))
        return dict(study.trials[int(number)].params)
    except Exception as exc:
        logger.warning("the study %r could not be read from %s (%s); reading trial %s's parameters from its MLflow "
                       "run instead", name, tracking.mask_url(storage), exc, number)
        return {key: typed(value) for key, value in trial_run.data.params.items()}


def register_job(study_run_id: str, model_name: str = "digits-clusters", alias: str = "champion",
                 force: bool = False, trial: str = ""):
    """Refit a study's chosen pipeline — or trial number ``trial``, one of its alternatives — on the
    full data, log it as a pyfunc model, register it, and move ``alias`` only if it is better."""
    if not str(model_name).strip() or not str(alias).strip():
        raise ValueError(f"`model_name` and `alias` must be non-empty; got {model_name!r}, {alias!r}.")
    tracking.configure_tracking()
    parent, best = _study_runs(study_run_id, trial)
    study_params = parent.data.params
    checkpoint = study_params.get("checkpoint", "").strip("'")  # `mlflow run` logs an empty value as ''
    labels = study_params.get("labels", "auto").strip("'") or "auto"  # what the study validated against
    data = load_dataset(study_params["dataset"],
                        labels if labels in ("auto", "none") or Path(labels).is_file() else "auto")
    embedded = embed(data, study_params["encoder"], checkpoint=checkpoint)
    return register_trial(parent, best, data, embedded, model_name, alias, force)


def register_trial(parent, best, data, embedded, model_name: str, alias: str = "champion", force: bool = False):
    """Register trial run ``best`` of the study whose parent run is ``parent``, refitted on ``embedded``
    (the vectors of ``data`` under the study's encoder): what ``register_job`` does once it has the data,
    and what ``selector.search(...).register(name)`` does with the data it was given."""
    from registry.promote import log_pipeline_model, register_and_promote, validate_model
    from selector.study.trials import pipeline_params

    if not str(model_name).strip() or not str(alias).strip():
        raise ValueError(f"`model_name` and `alias` must be non-empty; got {model_name!r}, {alias!r}.")
    study_run_id = parent.info.run_id
    study_params = parent.data.params
    dataset, encoder = study_params["dataset"], study_params["encoder"]
    checkpoint = study_params.get("checkpoint", "").strip("'")
    seed = int(study_params.get("seed", 0))
    reducer, clusterer = pipeline_params(trial_params(parent, best))
    pipeline = ClusterPipeline(reducer, clusterer, seed=seed).fit(embedded.vectors)
    assigned, confidence = pipeline.assign(embedded.vectors)  # what the served model answers for them
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
    with retry.call(mlflow.start_run, run_name=f"register-{model_name}", nested=mlflow.active_run() is not None):
        info = log_pipeline_model(pipeline, config, weights, example)
        validate_model(info.model_uri, config, example)  # refused here: nothing registered, no alias moved
        tags = {"dataset": dataset, "encoder": encoder, "objective": objective, "objective_value": objective_value,
                "silhouette_umap": scores["silhouette_umap"], "study_run_id": study_run_id, "ami": scores.get("ami"),
                "clusterer": clusterer["name"], "reducer": reducer["name"],
                "trial": best.data.tags.get("optuna_trial_number")}
        result = register_and_promote(info.model_uri, model_name, alias, tags, force=force)
        reports.log_clusters(reports.clusters_table(embedded.ids, assigned, confidence, embedded.labels),
                             mlflow.active_run().info.run_id)
        tracking.log_batch(
            params={"study_run_id": study_run_id, "model_name": model_name, "alias": alias, "force": force,
                    "trial": best.data.tags.get("optuna_trial_number")},
            metrics={"train_agreement": agreement, "objective_value": objective_value,
                     "silhouette_umap": scores["silhouette_umap"], "ami": scores.get("ami"),
                     "n_clusters": int(len(set(pipeline.labels_) - {-1}))},
            tags={"registered_version": result.version, "promoted": str(result.promoted).lower(),
                  "promotion_reason": result.reason})
    print(f"{model_name} version {result.version}: {'promoted to' if result.promoted else 'not'} "
          f"@{alias} ({result.reason}); training-set agreement {agreement:.3f}")
    return result
