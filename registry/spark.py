"""A registered model applied to a Spark DataFrame as ``mlflow.pyfunc.spark_udf``: one struct a row
(``cluster``, ``confidence``, ``error``), a refused row costing only itself (the model's parameter
``on_error="row"``), Arrow batches no larger than the model takes in one request."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

RESULT = "cluster long, confidence double, error string"


def batch_rows(model_uri: str, batch_size: int) -> tuple[int, object]:
    """The Arrow batch size for ``model_uri`` (``batch_size``, capped at what one request of that model
    may carry) and the model's metadata; a model without the ``on_error`` parameter (registered by an
    older selector) is refused, saying how to re-register it."""
    import mlflow

    from registry.model import IMAGE_COLUMN, MAX_IMAGE_ROWS, MAX_VECTOR_ROWS

    try:
        info = mlflow.models.get_model_info(model_uri)
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"cannot load model {model_uri!r} from {mlflow.get_tracking_uri()}: {exc.message}") from None
    signature = info.signature
    params = [p.name for p in signature.params.params] if signature is not None and signature.params is not None else []
    if "on_error" not in params:
        raise ValueError(f"model {model_uri!r} was registered by an older selector and cannot leave a refused row "
                         "to its own row on Spark; re-register its study (`selector register --study_run_id …`), "
                         "or run `predict` without `spark_master`.")
    names = signature.inputs.input_names()
    limit = MAX_IMAGE_ROWS if IMAGE_COLUMN in names else MAX_VECTOR_ROWS
    if batch_size > limit:
        logger.warning("batch_size %d is more than model %s takes in one request; Spark batches of %d instead",
                       batch_size, model_uri, limit)
    return min(int(batch_size), limit), signature


def input_columns(signature, frame) -> list[str]:
    """The columns of ``frame`` the model reads: ``image`` (raw bytes), ``vector``, or the training
    file's feature columns."""
    from registry.model import IMAGE_COLUMN, VECTOR_COLUMN

    names = signature.inputs.input_names()
    if IMAGE_COLUMN in names or VECTOR_COLUMN in names:
        chosen = [name for name in (IMAGE_COLUMN, VECTOR_COLUMN) if name in names and name in frame.columns][:1]
        if chosen:
            return chosen
        raise ValueError(f"the data set has none of the model's input columns {names}; its columns: {frame.columns}.")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"the data set lacks the model's feature column(s) {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''}; its columns: {frame.columns[:10]}.")
    return names


def predict_frame(spark, model_uri: str, frame, columns: list[str]):
    """``frame`` with ``cluster``, ``confidence`` and ``error`` (null when the row was taken) beside its
    ``id`` (and ``label``): the model at ``model_uri`` as a Spark UDF on ``columns``."""
    import mlflow
    from pyspark.sql import functions as F

    from selector.quiet import verbose

    # MLflow advises a conda environment for env_manager="local"; here executors run the model's pinned
    # requirements already installed (README, "On a cluster")
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    if not verbose():
        pyfunc_log.setLevel(logging.ERROR)
    try:
        udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=RESULT, env_manager="local",
                                      params={"on_error": "row"})
    finally:
        pyfunc_log.setLevel(level)
    answer = frame.withColumn("answer", udf(F.struct(*[F.col(c) for c in columns])))
    keep = [c for c in ("id", "label") if c in frame.columns]
    return answer.select(*keep, "answer.cluster", "answer.confidence",
                         F.when(F.col("answer.error") != "", F.col("answer.error")).alias("error"))
