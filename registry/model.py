"""The served model (MLflow models-from-code): images or vectors in, ``cluster`` and ``confidence`` out.

Artifacts: ``pipeline_arrays`` + ``pipeline_spec`` (the fitted reduce→cluster pipeline as arrays and
JSON, ``selector.stages.portable``; models registered before hold a joblib ``pipeline``), ``encoder``
(its config as JSON) and, for neural encoders, ``weights`` (safetensors, so serving never downloads
anything and unpickles nothing).
Image models also take a column ``vector`` instead of ``image``: each image's embedding by the model's
own encoder (data embedded once, e.g. by the ``embed`` job, is not encoded again).
Bad requests raise ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, which the scoring server
answers with HTTP 400 and the message. With the parameter ``on_error="row"`` (what the Spark UDF asks
for) a row the model refuses costs only that row: cluster −1, confidence 0 and the message in ``error``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from selector.stages.data import VECTOR_COLUMN  # instead of an image: its embedding by the model's own encoder

logger = logging.getLogger(__name__)

IMAGE_COLUMN = "image"
BATCH = 64  # images through the encoder at once
# The most rows one request may carry; a larger batch is refused with 400, naming the limit (split it).
# Images are decoded and held as tensors together; vectors are cheap.
MAX_IMAGE_ROWS = 1_024
MAX_VECTOR_ROWS = 100_000
# What a refused row does: fail the request (HTTP 400), or come back as its own row with an ``error``.
ON_ERROR = ("raise", "row")


def bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def load_pipeline(artifacts: dict):
    """The served pipeline: arrays and JSON, read without pickle (``selector.stages.portable``); a model
    registered before that format holds a joblib pickle, which is read — with one warning."""
    if "pipeline_spec" in artifacts:
        from selector.stages import portable

        return portable.load(artifacts["pipeline_arrays"], artifacts["pipeline_spec"])
    import joblib

    logger.warning("this model's pipeline is a pickle (registered by an older selector); it loads, but re-register "
                   "its study (`selector register --study_run_id <its study_run_id tag>`) for the pickle-free format")
    return joblib.load(artifacts["pipeline"])


class ClusterPipelineModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from selector.stages.encoders import serving_encoder

        with open(context.artifacts["encoder"]) as handle:
            self.encoder_config = json.load(handle)
        self.pipeline = load_pipeline(context.artifacts)
        self.encoder = serving_encoder(self.encoder_config, weights=context.artifacts.get("weights", ""))
        self.feature_names = self.encoder_config.get("feature_names")
        self._warm_up()

    def _warm_up(self) -> None:
        """Answer one made-up request while loading, so the first real one does not pay the one-off
        costs (lazy imports, numba compiling the placement of new points, torch's first forward)."""
        if self.encoder.spec.takes == "images":
            from selector.stages.data import encode_png

            frame = pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(encode_png(np.zeros((8, 8), np.uint8))).decode()]})
        elif self.feature_names == [VECTOR_COLUMN]:
            frame = pd.DataFrame({VECTOR_COLUMN: [np.zeros(self.pipeline.n_features_in_)]})
        else:
            names = self.feature_names or list(range(self.pipeline.n_features_in_))
            frame = pd.DataFrame([np.zeros(len(names))], columns=names)
        self.predict(None, frame)

# ----------------------------------------------------------------- input checks
    def _images(self, frame: pd.DataFrame, errors: dict) -> list:
        """One vector (or ``None``, its message in ``errors``) a row of column ``image``."""
        from selector.stages.data import ImageDecodeError, ImageTooLarge, decode_image

        if IMAGE_COLUMN not in frame.columns:
            raise bad_request(f"the request needs a column {IMAGE_COLUMN!r} of base64 PNG/JPEG bytes (or "
                              f"{VECTOR_COLUMN!r} of this encoder's embeddings); got columns "
                              f"{list(map(str, frame.columns))}.")
        # Raw pixels are prepared as NumPy (``RawPreprocess.array``): no torch in their serving process.
        prepare = getattr(self.encoder.preprocess, "array", self.encoder.preprocess)
        tensors = {}
        for row, value in enumerate(frame[IMAGE_COLUMN]):
            if isinstance(value, str):
                try:
                    value = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    errors[row] = f"column {IMAGE_COLUMN!r} is not valid base64."
                    continue
            if not isinstance(value, (bytes, bytearray)) or not value:
                errors[row] = (f"column {IMAGE_COLUMN!r} must hold base64 image bytes; "
                               f"got {type(value).__name__}.")
                continue
            try:
                tensors[row] = prepare(decode_image(bytes(value), source="the image"))
            except ImageTooLarge as exc:
                errors[row] = f"{exc}."
            except ImageDecodeError as exc:
                errors[row] = f"not a decodable image ({exc})."
        from selector.stages.embedding import forward_prepared  # (raw pixels stay NumPy: no torch imported)

        answer = [None] * len(frame)
        for row, vector in zip(tensors, forward_prepared(self.encoder, list(tensors.values()), BATCH)):
            answer[row] = vector
        return answer

    def _embedded(self, frame: pd.DataFrame, errors: dict) -> list:
        """Rows of column ``vector``: each point's vector (for an image model, its embedding by this
        model's own encoder)."""
        expected = self.pipeline.n_features_in_
        what = f"the embedding of encoder {self.encoder.name!r}" if self.encoder.spec.takes == "images" else "a vector"
        answer = [None] * len(frame)
        for row, value in enumerate(frame[VECTOR_COLUMN]):
            try:
                vector = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                errors[row] = f"column {VECTOR_COLUMN!r} must hold a list of numbers."
                continue
            if vector.shape != (expected,):
                errors[row] = (f"column {VECTOR_COLUMN!r} must hold {expected} numbers ({what}); "
                               f"got shape {vector.shape}.")
            elif not np.isfinite(vector).all():
                errors[row] = f"column {VECTOR_COLUMN!r} contains NaN/inf."
            else:
                answer[row] = vector
        return answer

    def _vectors(self, frame: pd.DataFrame, errors: dict) -> list:
        """The feature columns of the training file (or its one array column ``vector``), a vector a row."""
        expected = self.pipeline.n_features_in_
        names = self.feature_names or []
        if VECTOR_COLUMN in frame.columns and not (len(names) > 1 and set(names) <= set(map(str, frame.columns))):
            return self._embedded(frame, errors)
        if names and set(names) <= set(map(str, frame.columns)):
            frame = frame[names]
        if frame.shape[1] != expected:
            raise bad_request(f"each vector must have {expected} values; got {frame.shape[1]} column(s).")
        try:
            vectors = frame.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise bad_request("vectors must be numeric.") from None
        bad = ~np.isfinite(vectors).all(axis=1)
        for row in np.flatnonzero(bad):
            errors[int(row)] = "the vector contains NaN/inf."
        return [None if b else v for b, v in zip(bad, vectors)]

    # The hint is what MLflow reads: a DataFrame has no schema to infer, so MLflow neither wraps
    # predict nor advises hints; the logged signature states the columns (registry.promote).
    def predict(self, context, model_input: pd.DataFrame, params=None):
        on_error = (params or {}).get("on_error", "raise")
        if on_error not in ON_ERROR:
            raise bad_request(f"parameter `on_error` must be one of {', '.join(ON_ERROR)}; got {on_error!r}.")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if self.encoder.spec.takes == "images" and not {IMAGE_COLUMN, VECTOR_COLUMN} & set(map(str, frame.columns)):
            # (MLflow's schema check keeps only the signature's columns: the others are gone by now)
            raise bad_request(f"the request needs a column {IMAGE_COLUMN!r} of base64 PNG/JPEG bytes (or "
                              f"{VECTOR_COLUMN!r} of this encoder's embeddings); got none of them.")
        if len(frame) == 0:
            raise bad_request("empty batch: send at least one row.")
        limit = MAX_IMAGE_ROWS if self.encoder.spec.takes == "images" else MAX_VECTOR_ROWS
        if len(frame) > limit:
            raise bad_request(f"batch of {len(frame):,} rows; the limit is {limit:,} rows a request — split it.")
        errors: dict[int, str] = {}  # refused rows: row → the message
        if self.encoder.spec.takes == "vectors":
            vectors = self._vectors(frame, errors)
        elif VECTOR_COLUMN in frame.columns and IMAGE_COLUMN not in frame.columns:
            vectors = self._embedded(frame, errors)  # embedded already by this encoder (e.g. the `embed` job)
        else:
            vectors = self._images(frame, errors)
        if errors and on_error == "raise":
            first = min(errors)
            raise bad_request(f"row {first}: {errors[first]}")
        clusters = np.full(len(frame), -1, dtype=np.int64)
        confidence = np.zeros(len(frame), dtype=np.float64)
        good = [row for row, vector in enumerate(vectors) if vector is not None]
        if good:
            labels, scores = self.pipeline.assign(np.stack([vectors[row] for row in good]).astype(np.float32))
            clusters[good], confidence[good] = labels.astype(np.int64), scores.astype(np.float64)
        answer = pd.DataFrame({"cluster": clusters, "confidence": confidence})
        if on_error == "row":
            answer["error"] = [errors.get(row, "") for row in range(len(frame))]
        return answer


mlflow.models.set_model(ClusterPipelineModel())
