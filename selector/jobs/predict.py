"""The `predict` job: every image or vector of a data set assigned by a registered model, as a CSV."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from selector import retry

from selector.study import tracking
from selector.stages.data import load_dataset


def predict_job(model_uri: str = "models:/digits-clusters@champion", dataset: str = "digits",
                output: str = "clusters.csv", batch_size: int = 256):
    """Assign every point of ``dataset`` with the model at ``model_uri`` (batched, the served model's
    ``predict``), write ``output`` (id, cluster, confidence; label when known; error for refused rows)
    and log it, with counts, on a ``predict`` run."""
    from registry import batch

    if not str(output).strip():
        raise ValueError("`output` must be a CSV path; got an empty string.")
    target = Path(output).expanduser()
    if not target.parent.is_dir():
        raise ValueError(f"`output` {output!r}: folder {str(target.parent)!r} does not exist.")
    tracking.configure_tracking()
    data = load_dataset(dataset)
    model = batch.load(model_uri)
    start = time.perf_counter()
    table = batch.predict_dataset(model, data, batch_size=int(batch_size))
    seconds = time.perf_counter() - start
    table.to_csv(target, index=False)
    refused = int((table["error"] != "").sum()) if "error" in table.columns else 0
    clustered = table["cluster"] != -1
    with retry.call(mlflow.start_run, run_name=f"predict-{data.name}", nested=mlflow.active_run() is not None) as run:
        tracking.log_batch(params={"model_uri": model_uri, "dataset": dataset, "output": str(target),
                                   "batch_size": batch_size},
                           metrics={"n_points": len(table), "n_refused": refused,
                                    "n_clusters": table.loc[clustered, "cluster"].nunique(),
                                    "noise_fraction": float(1 - clustered.mean()), "predict_seconds": seconds,
                                    "points_per_second": len(table) / max(seconds, 1e-9)})
        retry.call(mlflow.log_artifact, str(target))
    print(f"{model_uri}: {len(table)} points of {data.name} in {seconds:.1f} s → {target} "
          f"({table.loc[clustered, 'cluster'].nunique()} clusters, {int((~clustered).sum())} noise"
          + (f", {refused} refused" if refused else "") + f"); run {run.info.run_id}")
    return table
