"""The `embed` job: compute (or reuse cached) embeddings and log them."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

from selector import retry
from selector.files import check_output

from selector.study import tracking
from selector.stages.data import load_dataset
from selector.stages.embedding import Embeddings, check_embed_request, embed
from selector.stages.encoders import resolve_device

logger = logging.getLogger(__name__)


def embed_job(dataset: str = "digits", encoder: str = "efficientnet_lite0", checkpoint: str = "",
              batch_size: int = 64, image_size: int = 0, device: str = "auto", labels: str = "auto",
              output: str = "", spark_master: str = "") -> Embeddings | dict:
    """Compute (or reuse cached) embeddings and log them, their shape and their speed to MLflow;
    ``labels`` (``auto``, ``none`` or a CSV of ``id,label``) go into ``embeddings.npz`` as ``y``.

    ``output``: also write the vectors as Parquet (``id``, ``path``, ``label``, ``vector``, ``error``), the
    table ``tune`` and ``select`` take with ``encoder=none``. ``spark_master`` (``local[N]``, ``spark://…``,
    ``yarn``, ``k8s://…``): embed on Apache Spark instead of in this process, writing that Parquet
    folder (``output``; default ``<data set>-<encoder>.parquet`` here) instead of ``embeddings.npz``."""
    if str(spark_master).strip():
        return embed_on_spark(dataset, encoder, checkpoint, batch_size, image_size, device, labels, output,
                              spark_master)
    start = time.perf_counter()
    # Validate everything before a run exists: a bad request leaves nothing half-written.
    data = load_dataset(dataset, labels)
    check_embed_request(data, encoder, checkpoint, image_size, batch_size)
    resolved_device = resolve_device(device)
    target = Path(check_output(output)) if str(output).strip() else None
    tracking.configure_tracking()
    with retry.call(mlflow.start_run, run_name=f"embed-{data.name}-{encoder}", nested=mlflow.active_run() is not None):
        result = embed(data, encoder, checkpoint=checkpoint, image_size=image_size,
                       batch_size=batch_size, device=resolved_device)
        if target is not None:
            write_parquet(result, data, target)
        log_embeddings(result, dataset=dataset, checkpoint=checkpoint, batch_size=batch_size,
                       image_size=image_size, device=device, labels=labels, output=output,
                       wall_seconds=time.perf_counter() - start)
    return result


def write_parquet(result: Embeddings, data, target: Path) -> None:
    """The table ``embed`` writes on Spark, from this process: ``id``, ``path``, ``label``, ``vector``."""
    import pandas as pd

    from selector.stages.data import FileImages

    by_id = {}
    if data.kind == "images" and isinstance(data.images, FileImages):
        by_id = {str(i): str(p) for i, p in zip(data.ids, data.images.paths)}
    table = pd.DataFrame({"id": result.ids.astype(str), "path": [by_id.get(str(i)) for i in result.ids]})
    if result.labels is not None:
        table["label"] = result.labels
    table["vector"] = list(result.vectors.astype(np.float32))
    table.to_parquet(target, index=False)


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
        retry.call(mlflow.log_artifact, str(path))
        if result.skipped:
            skipped = Path(tmp) / "skipped.txt"
            skipped.write_text("\n".join(result.skipped) + "\n")
            retry.call(mlflow.log_artifact, str(skipped))
    logger.info("%s × %s embeddings from %s in %.1f s (%.0f images/s, cache %s)", n, dim,
                result.encoder["name"], result.seconds, result.images_per_second,
                "hit" if result.cache_hit else "miss")


def embed_on_spark(dataset: str, encoder: str, checkpoint: str, batch_size: int, image_size: int, device: str,
                   labels: str, output: str, spark_master: str) -> dict:
    """``embed`` on Apache Spark: every image of the folder ``dataset`` through the encoder on the
    executors (built once per task from weights the driver ships), written as a Parquet folder."""
    from selector import spark
    from selector.stages.data import check_labels
    from selector.stages.embedding import check_encoder_request
    from selector.stages.encoders import identity, serving_files

    start = time.perf_counter()
    master = spark.check_spark(spark_master)
    root = spark.check_dataset(dataset)
    if spark.is_table(root):
        raise ValueError(f"dataset {dataset!r} is a table of vectors; `embed` on Spark encodes image folders.")
    stem = Path(root.rstrip("/")).name or "images"
    name = check_encoder_request("images", stem, encoder, checkpoint, image_size, batch_size)
    check_labels(labels)
    target = check_output(str(output).strip() or f"{stem}-{name.replace('/', '_').replace('@', '_')}.parquet")
    tracking.configure_tracking()
    spark.quiet_executors()
    session = spark.session(master, "selector-embed", int(batch_size))
    images = spark.read_images(session.spark, root, labels)
    # only the raw-pixel encoder's output depends on the colour mode: only it pays for finding it
    needs_mode = identity(name, checkpoint, image_size, "L") != identity(name, checkpoint, image_size, "RGB")
    mode = spark.detect_mode(session.spark, images) if needs_mode else "RGB"
    config, weights = serving_files(identity(name, checkpoint, image_size, mode), checkpoint)
    udf = spark.embed_udf(session.spark, config, weights, int(batch_size), device)
    keep = [c for c in ("id", "path", "label") if c in images.columns]
    with retry.call(mlflow.start_run, run_name=f"embed-{stem}-{name}", nested=mlflow.active_run() is not None):
        began = time.perf_counter()
        images.withColumn("embedded", udf("content")).select(*keep, "embedded.vector", "embedded.error") \
            .write.mode("overwrite").parquet(target)
        seconds = time.perf_counter() - began
        written = session.spark.read.parquet(target)
        counts = written.selectExpr("count(*) AS n", "count(error) AS refused",
                                    "max(size(vector)) AS dim").collect()[0]
        refused = written.where("error IS NOT NULL").select("id", "error").limit(10_000).collect()
        n_images = counts["n"] - counts["refused"]
        tracking.log_batch(
            params={"dataset": dataset, "checkpoint": checkpoint, "batch_size": batch_size, "image_size": image_size,
                    "device": device, "labels": labels, "output": target, "spark_master": master,
                    "encoder": config["name"], **{f"encoder.{k}": v for k, v in config.items() if k != "name"}},
            metrics={"n_images": n_images, "embedding_dim": counts["dim"] or 0, "n_skipped": counts["refused"],
                     "embed_seconds": seconds, "images_per_second": n_images / max(seconds, 1e-9),
                     "spark_start_seconds": session.start_seconds, "wall_seconds": time.perf_counter() - start},
            tags={"cache_hit": "false", "dataset_name": stem, "device_used": f"spark executors ({device})"},
        )
        if refused:
            with tempfile.TemporaryDirectory() as tmp:
                skipped = Path(tmp) / "skipped.txt"
                skipped.write_text("".join(f"{row['id']}\t{row['error']}\n" for row in refused))
                retry.call(mlflow.log_artifact, str(skipped))
    print(f"{n_images} × {counts['dim']} embeddings of {stem} by {config['name']} on Spark {master} in {seconds:.1f} s "
          f"({n_images / max(seconds, 1e-9):.1f} images/s; Spark started in {session.start_seconds:.1f} s)"
          + (f", {counts['refused']} undecodable" if counts["refused"] else "") + f" → {target}")
    return {"output": target, "n_images": n_images, "n_skipped": counts["refused"], "seconds": seconds,
            "start_seconds": session.start_seconds}
