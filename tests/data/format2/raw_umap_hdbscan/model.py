"""The served model (MLflow models-from-code): images or vectors in, ``cluster`` and ``confidence`` out.

Artifacts: ``pipeline`` (the fitted reduce→cluster pipeline, joblib), ``encoder`` (its config as
JSON) and, for neural encoders, ``weights`` (a state dict, so serving never downloads anything).
Bad requests raise ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, which the scoring server
answers with HTTP 400 and the message.
"""

from __future__ import annotations

import base64
import binascii
import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

IMAGE_COLUMN = "image"
BATCH = 64  # images through the encoder at once
# The most rows one request may carry; a larger batch is refused with 400, naming the limit (split it).
# Images are decoded and held as tensors together; vectors are cheap.
MAX_IMAGE_ROWS = 1_024
MAX_VECTOR_ROWS = 100_000


def bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class ClusterPipelineModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import joblib

        from selector.encoders import serving_encoder

        with open(context.artifacts["encoder"]) as handle:
            self.encoder_config = json.load(handle)
        self.pipeline = joblib.load(context.artifacts["pipeline"])
        self.encoder = serving_encoder(self.encoder_config, weights=context.artifacts.get("weights", ""))
        self.feature_names = self.encoder_config.get("feature_names")
        self._warm_up()

    def _warm_up(self) -> None:
        """Answer one made-up request while loading, so the first real one does not pay the one-off
        costs (lazy imports, numba compiling the placement of new points, torch's first forward)."""
        if self.encoder.spec.takes == "images":
            from selector.data import encode_png

            frame = pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(encode_png(np.zeros((8, 8), np.uint8))).decode()]})
        else:
            names = self.feature_names or list(range(self.pipeline.n_features_in_))
            frame = pd.DataFrame([np.zeros(len(names))], columns=names)
        self.predict(None, frame)

    # ----------------------------------------------------------------- input checks
    def _images(self, frame: pd.DataFrame) -> np.ndarray:
        import torch

        from selector.data import ImageDecodeError, ImageTooLarge, decode_image

        if IMAGE_COLUMN not in frame.columns:
            raise bad_request(f"the request needs a column {IMAGE_COLUMN!r} of base64 PNG/JPEG bytes; "
                              f"got columns {list(map(str, frame.columns))}.")
        tensors = []
        for row, value in enumerate(frame[IMAGE_COLUMN]):
            if isinstance(value, str):
                try:
                    value = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise bad_request(f"row {row}: column {IMAGE_COLUMN!r} is not valid base64.") from None
            if not isinstance(value, (bytes, bytearray)) or not value:
                raise bad_request(f"row {row}: column {IMAGE_COLUMN!r} must hold base64 image bytes; "
                                  f"got {type(value).__name__}.")
            try:
                tensors.append(self.encoder.preprocess(decode_image(bytes(value), source=f"row {row}")))
            except ImageTooLarge as exc:
                raise bad_request(f"row {row}: {exc}.") from None
            except ImageDecodeError as exc:
                raise bad_request(f"row {row}: not a decodable image ({exc}).") from None
        chunks = [self.encoder.forward(torch.stack(tensors[i:i + BATCH])) for i in range(0, len(tensors), BATCH)]
        return np.concatenate(chunks)

    def _vectors(self, frame: pd.DataFrame) -> np.ndarray:
        expected = self.pipeline.n_features_in_
        if self.feature_names and set(self.feature_names) <= set(map(str, frame.columns)):
            frame = frame[self.feature_names]
        if frame.shape[1] != expected:
            raise bad_request(f"each vector must have {expected} values; got {frame.shape[1]} column(s).")
        try:
            vectors = frame.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise bad_request("vectors must be numeric.") from None
        bad = ~np.isfinite(vectors)
        if bad.any():
            raise bad_request(f"vectors contain NaN/inf in row(s) {np.flatnonzero(bad.any(axis=1))[:10].tolist()}.")
        return vectors.astype(np.float32)

    # The hint is what MLflow reads: a DataFrame has no schema to infer, so MLflow neither wraps
    # predict nor advises hints; the logged signature states the columns (registry.promote).
    def predict(self, context, model_input: pd.DataFrame, params=None):
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if len(frame) == 0:
            raise bad_request("empty batch: send at least one row.")
        limit = MAX_IMAGE_ROWS if self.encoder.spec.takes == "images" else MAX_VECTOR_ROWS
        if len(frame) > limit:
            raise bad_request(f"batch of {len(frame):,} rows; the limit is {limit:,} rows a request — split it.")
        vectors = self._images(frame) if self.encoder.spec.takes == "images" else self._vectors(frame)
        labels, confidence = self.pipeline.predict(vectors)
        return pd.DataFrame({"cluster": labels.astype(np.int64), "confidence": confidence.astype(np.float64)})


mlflow.models.set_model(ClusterPipelineModel())
