"""Asking a registered model about a whole data set, in batches, exactly as a client of the served
model would: the same request rows (base64 image bytes, or the training file's columns) through the
same pyfunc ``predict`` that ``mlflow models serve`` calls."""

from __future__ import annotations

import base64
import logging

import numpy as np
import pandas as pd

from selector.stages.data import VECTOR_COLUMN, Dataset, FileImages, encode_png

logger = logging.getLogger(__name__)


def request_frame(data: Dataset, rows) -> pd.DataFrame:
    """The served model's request for ``rows`` of ``data``: a file's own bytes (what a client posts),
    an in-memory image as PNG, or the vectors under the training file's column names."""
    rows = np.asarray(rows, dtype=np.int64)
    if data.kind == "vectors" and data.feature_names == [VECTOR_COLUMN]:  # one array column (e.g. `embed` on Spark)
        return pd.DataFrame({VECTOR_COLUMN: list(data.vectors[rows].astype(np.float64))})
    if data.kind == "vectors":
        return pd.DataFrame(data.vectors[rows], columns=data.feature_names)
    if isinstance(data.images, FileImages):
        raw = [data.images.paths[i].read_bytes() for i in rows]
    else:
        raw = [encode_png(data.images[i]) for i in rows]
    return pd.DataFrame({"image": [base64.b64encode(b).decode("ascii") for b in raw]})


def load(model_uri: str):
    """The pyfunc model at ``model_uri`` (``models:/NAME@alias``, ``runs:/…``, a path); a URI the
    tracking store does not know raises ``ValueError`` naming it."""
    import mlflow

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"cannot load model {model_uri!r} from {mlflow.get_tracking_uri()}: {exc.message}") from None


def predict_dataset(model, data: Dataset, batch_size: int = 256, progress: bool = True) -> pd.DataFrame:
    """``id``, ``cluster``, ``confidence`` (and ``label`` when known) for every point of ``data``.

    A batch the model refuses is asked again row by row, so one bad file costs only its own row:
    it gets cluster −1, confidence 0 and the model's message in ``error``.
    """
    from mlflow.exceptions import MlflowException
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    clusters = np.full(len(data), -1, dtype=np.int64)
    confidence = np.zeros(len(data), dtype=np.float64)
    errors = np.full(len(data), "", dtype=object)
    with tqdm(total=len(data), desc="predict", unit="point", disable=not progress) as bar:
        for start in range(0, len(data), batch_size):
            rows = np.arange(start, min(start + batch_size, len(data)))
            try:
                answer = model.predict(request_frame(data, rows))
                clusters[rows], confidence[rows] = answer["cluster"].to_numpy(), answer["confidence"].to_numpy()
            except MlflowException:
                for row in rows:
                    try:
                        answer = model.predict(request_frame(data, [row]))
                        clusters[row], confidence[row] = answer["cluster"].iloc[0], answer["confidence"].iloc[0]
                    except MlflowException as exc:
                        errors[row] = exc.message
                        logger.warning("%s: %s", data.ids[row], exc.message)
            bar.update(len(rows))
    table = pd.DataFrame({"id": data.ids.astype(str), "cluster": clusters, "confidence": confidence})
    if data.labels is not None:
        table["label"] = data.labels
    if (errors != "").any():
        table["error"] = errors
    return table
