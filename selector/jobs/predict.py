"""The `predict` job: every image or vector of a data set assigned by a registered model, as a CSV."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from selector import retry
from selector.files import check_output

from selector.study import tracking
from selector.stages.data import load_dataset


SMALL = 100_000  # a result of at most this many rows is also logged on the run as a CSV


def predict_job(model_uri: str = "models:/digits-clusters@champion", dataset: str = "digits",
                output: str = "clusters.csv", batch_size: int = 256, spark_master: str = ""):
    """Assign every point of ``dataset`` with the model at ``model_uri`` (batched, the served model's
    ``predict``), write ``output`` (id, cluster, confidence; label when known; error for refused rows)
    and log it, with counts, on a ``predict`` run.

    ``spark_master`` (``local[N]``, ``spark://…``, ``yarn``, ``k8s://…``): on Apache Spark, the model as
    a Spark UDF over an image folder (``binaryFile``) or a Parquet/CSV table; ``output`` is then a ``.csv``
    file (collected and written once: for small results) or a Parquet folder."""
    if str(spark_master).strip():
        return predict_on_spark(model_uri, dataset, output, batch_size, spark_master)
    from registry import batch

    if not str(output).strip():
        raise ValueError("`output` must be a CSV path; got an empty string.")
    target = Path(check_output(output)).expanduser()
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


def predict_on_spark(model_uri: str, dataset: str, output: str, batch_size: int, spark_master: str):
    """``predict`` on Apache Spark: the registered model as ``mlflow.pyfunc.spark_udf`` on every row."""
    import pandas as pd

    from registry import spark as model_udf
    from selector import spark

    master = spark.check_spark(spark_master)
    source = spark.check_dataset(dataset)
    target = str(output).strip()
    if not target:
        raise ValueError("`output` must be a .csv file or a Parquet folder; got an empty string.")
    target = check_output(target)
    as_csv = target.lower().endswith(".csv")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    tracking.configure_tracking()
    rows, signature = model_udf.batch_rows(model_uri, int(batch_size))
    spark.quiet_executors()
    session = spark.session(master, "selector-predict", rows)
    if spark.is_table(source):
        frame = spark.read_table(session.spark, source)
        if "id" not in frame.columns:
            from pyspark.sql import functions as F

            frame = frame.withColumn("id", F.monotonically_increasing_id().cast("string"))
    else:
        frame = spark.read_images(session.spark, source).withColumnRenamed("content", "image")
    answer = model_udf.predict_frame(session.spark, model_uri, frame, model_udf.input_columns(signature, frame))
    start = time.perf_counter()
    if as_csv:
        table = answer.toPandas().sort_values("id", kind="stable").reset_index(drop=True)
        table["error"] = table["error"].fillna("")
        if not (table["error"] != "").any():
            table = table.drop(columns="error")
        table.to_csv(Path(target).expanduser(), index=False)
    else:
        answer.write.mode("overwrite").parquet(target)
    seconds = time.perf_counter() - start
    written = session.spark.read.parquet(target) if not as_csv else None
    stats = (written.selectExpr("count(*) AS n", "count(error) AS refused",
                                "count(DISTINCT CASE WHEN cluster != -1 THEN cluster END) AS clusters",
                                "sum(CASE WHEN cluster = -1 THEN 1 ELSE 0 END) AS noise").collect()[0].asDict()
             if written is not None else
             {"n": len(table), "refused": int((table.get("error", pd.Series(dtype=str)) != "").sum()),
              "clusters": table.loc[table["cluster"] != -1, "cluster"].nunique(),
              "noise": int((table["cluster"] == -1).sum())})
    n = int(stats["n"])
    with retry.call(mlflow.start_run, run_name=f"predict-{Path(source.rstrip('/')).name}",
                    nested=mlflow.active_run() is not None) as run:
        tracking.log_batch(params={"model_uri": model_uri, "dataset": dataset, "output": target,
                                   "batch_size": batch_size, "spark_master": master},
                           metrics={"n_points": n, "n_refused": int(stats["refused"]),
                                    "n_clusters": int(stats["clusters"]),
                                    "noise_fraction": float(stats["noise"] or 0) / max(n, 1),
                                    "predict_seconds": seconds, "points_per_second": n / max(seconds, 1e-9),
                                    "spark_start_seconds": session.start_seconds})
        if as_csv and n <= SMALL:
            retry.call(mlflow.log_artifact, str(Path(target).expanduser()))
        elif n <= SMALL:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                small = Path(tmp) / "clusters.csv"
                written.toPandas().sort_values("id", kind="stable").to_csv(small, index=False)
                retry.call(mlflow.log_artifact, str(small))
    print(f"{model_uri}: {n} points of {source} on Spark {master} in {seconds:.1f} s "
          f"({n / max(seconds, 1e-9):.1f} points/s; Spark started in {session.start_seconds:.1f} s) → {target} "
          f"({int(stats['clusters'])} clusters, {int(stats['noise'] or 0)} noise"
          + (f", {int(stats['refused'])} refused" if stats["refused"] else "") + f"); run {run.info.run_id}")
    return table if as_csv else written
