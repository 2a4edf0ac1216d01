"""The `embed` job: compute (or reuse cached) embeddings and log them."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

from selector import retry, tracking
from selector.data import load_dataset
from selector.embedding import Embeddings, check_embed_request, embed
from selector.encoders import resolve_device

logger = logging.getLogger(__name__)


def embed_job(dataset: str = "digits", encoder: str = "efficientnet_lite0", checkpoint: str = "",
              batch_size: int = 64, image_size: int = 0, device: str = "auto", labels: str = "auto") -> Embeddings:
    """Compute (or reuse cached) embeddings and log them, their shape and their speed to MLflow;
    ``labels`` (``auto``, ``none`` or a CSV of ``id,label``) go into ``embeddings.npz`` as ``y``."""
    start = time.perf_counter()
    # Validate everything before a run exists: a bad request leaves nothing half-written.
    data = load_dataset(dataset, labels)
    check_embed_request(data, encoder, checkpoint, image_size, batch_size)
    resolved_device = resolve_device(device)
    tracking.configure_tracking()
    with retry.call(mlflow.start_run, run_name=f"embed-{data.name}-{encoder}", nested=mlflow.active_run() is not None):
        result = embed(data, encoder, checkpoint=checkpoint, image_size=image_size,
                       batch_size=batch_size, device=resolved_device)
        log_embeddings(result, dataset=dataset, checkpoint=checkpoint, batch_size=batch_size,
                       image_size=image_size, device=device, labels=labels, wall_seconds=time.perf_counter() - start)
    return result


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
