"""Apache Spark for the work that grows with the number of images: embedding every image and
assigning every image to a cluster (``embed`` and ``predict`` with ``spark_master``).

Images are read with Spark's ``binaryFile`` source (recursively, the suffixes the one-process loader
takes), ids are paths under the data set's folder and labels the first-level sub-folder, as there. On
an executor the encoder is built once per task from its config and the weights the driver shipped
(``SparkContext.addFile``: no executor downloads anything) and runs on the executor's GPU when it has
one. A file that cannot be decoded costs its own row (``error``), never the task.
PySpark is an optional extra (``pip install -e '.[spark]'``); without it, or without a Java Spark
accepts, :func:`check_spark` refuses in one line saying what to install.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd  # (the UDFs' type hints, which PySpark reads)

logger = logging.getLogger(__name__)

INSTALL = "pip install -e '.[spark]'"
MASTER = re.compile(r"^(local(\[(\d+|\*)(,\d+)?\])?|spark://.+|yarn|k8s://.+|mesos://.+)$")
EMBEDDING = "vector array<float>, error string"  # what the embedding UDF returns for each image
# Spark's own logging: errors only (its start-up notices are not the user's to act on; SELECTOR_VERBOSE=1 shows them)
LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
"""


class SparkUnavailable(RuntimeError):
    """PySpark or a Java that Spark accepts is missing: the job refuses before it starts."""


def check_master(master: str) -> str:
    """``spark_master`` as Spark takes it: ``local[N]``, ``local[*]``, ``spark://…``, ``yarn``, ``k8s://…``."""
    text = str(master).strip()
    if not MASTER.match(text):
        raise ValueError(f"`spark_master` must be '' (one process), local[N], local[*], spark://HOST:PORT, yarn or "
                         f"k8s://…; got {master!r}.")
    return text


def java_major(java: str) -> int | None:
    """The major version of the Java at ``java`` (``java -version``), or None when it does not run."""
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_spark(master: str) -> str:
    """Refuse at once, in one line, when ``master`` cannot run: no PySpark, or no Java it accepts."""
    master = check_master(master)
    try:
        import pyspark
    except ImportError:
        raise SparkUnavailable(f"spark_master={master!r} needs PySpark: {INSTALL}") from None
    needed = 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
    home = os.environ.get("JAVA_HOME", "")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    major = java_major(java) if java else None
    if major is None or major < needed:
        found = "no Java found (JAVA_HOME, PATH)" if major is None else f"Java {major} found at {java}"
        raise SparkUnavailable(f"spark_master={master!r} needs Java {needed} or newer for PySpark "
                               f"{pyspark.__version__}; {found}: install one (e.g. apt-get install "
                               f"openjdk-{max(needed, 17)}-jre-headless) or set JAVA_HOME")
    return master


@dataclass
class Session:
    """A Spark session and what starting it cost (the JVM, the executors)."""

    spark: object
    start_seconds: float


def session(master: str, app: str, batch_rows: int) -> Session:
    """The Spark session for one job: Arrow batches of at most ``batch_rows`` rows (what a pandas UDF,
    and so the model, is asked at once). An active session is reused, with that batch size set."""
    check_spark(master)
    start = time.perf_counter()
    from pyspark.sql import SparkSession

    from selector.quiet import verbose

    builder = (SparkSession.builder.master(master).appName(app)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.showConsoleProgress", "false"))
    if not verbose():
        config = Path(tempfile.mkdtemp(prefix="selector-spark-")) / "log4j2.properties"
        config.write_text(LOG4J)
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile={config.as_uri()}")
    spark = builder.getOrCreate()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(int(batch_rows)))
    if not verbose():
        spark.sparkContext.setLogLevel("ERROR")
    return Session(spark, time.perf_counter() - start)


def quiet_executors() -> None:
    """What executors print that a user cannot act on: PySpark's pandas-version notice, MLflow's
    progress bars (set before the UDF is made, so its workers inherit them in local mode)."""
    import warnings

    from selector.quiet import verbose

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not verbose():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        os.environ.setdefault("PYTHONWARNINGS", "ignore:PySpark does not yet fully support pandas:FutureWarning")


# ----------------------------------------------------------------------------- reading
def image_glob() -> str:
    """A ``pathGlobFilter`` for every suffix the one-process loader takes, in either case."""
    from selector.stages.data import IMAGE_SUFFIXES

    def either(suffix: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in suffix.lstrip("."))

    return "*.{" + ",".join(sorted(either(s) for s in IMAGE_SUFFIXES)) + "}"


def qualified(spark, path: str) -> str:
    """``path`` as Spark names the files under it (``file:/…``, ``hdfs://…``, ``s3a://…``), no trailing slash."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(str(path))
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return str(fs.makeQualified(hadoop_path).toString()).rstrip("/")


def is_table(path: str) -> bool:
    """Whether ``path`` names a table of vectors (Parquet file or folder, CSV) rather than an image folder."""
    from selector.stages.data import is_parquet_folder

    local = Path(path).expanduser()
    if str(path).lower().rstrip("/").endswith((".parquet", ".csv")):
        return True
    return local.is_dir() and is_parquet_folder(local)


def read_images(spark, root: str, labels: str = "auto"):
    """``id``, ``path``, ``content`` (and ``label``) of every image file under ``root``: ids are paths under
    ``root``; labels the first-level sub-folder when every image sits in one (``labels='auto'``), none
    (``'none'``), or a CSV of ``id,label``."""
    from pyspark.sql import functions as F

    from selector.stages.data import check_labels

    choice = check_labels(labels)
    prefix = qualified(spark, root) + "/"
    frame = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
             .option("pathGlobFilter", image_glob()).load(str(root))
             .withColumn("id", F.col("path").substr(len(prefix) + 1, 1 << 30)))
    if choice == "auto":
        parts = F.split(F.col("id"), "/")
        counts = frame.select((F.size(parts) > 1).alias("nested")).groupBy("nested").count().collect()
        found = {row["nested"]: row["count"] for row in counts}
        if not found:
            raise ValueError(f"dataset folder {root!r} holds no image files (looked recursively with Spark).")
        if found.get(False, 0) == 0:
            frame = frame.withColumn("label", parts.getItem(0))
        elif found.get(True, 0):
            logger.warning("images in %s sit both in the top folder and in sub-folders: loading without labels", root)
    elif choice != "none":
        table = spark.read.option("header", "true").csv(choice).select(F.col("id").cast("string"), "label")
        frame = frame.join(table, on="id", how="left")
    return frame.select("id", "path", "content", *(["label"] if "label" in frame.columns else []))


def read_table(spark, path: str):
    """A Parquet file or folder, or a CSV with a header, as Spark reads it."""
    if str(path).lower().rstrip("/").endswith(".csv"):
        return spark.read.option("header", "true").option("inferSchema", "true").csv(str(path))
    return spark.read.parquet(str(path))


def check_dataset(dataset: str) -> str:
    """A data set Spark can read: an image folder, or a Parquet/CSV table (built-ins and .npy/.npz are
    read by the one-process jobs)."""
    text = str(dataset).strip()
    local = Path(text).expanduser()
    remote = "://" in text
    if not remote and not local.exists():
        raise ValueError(f"dataset {text!r}: on Spark, `dataset` is an image folder or a Parquet/CSV table; "
                         "no such file or folder (built-in data sets run without `spark_master`).")
    if not remote and local.is_file() and local.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"dataset {text!r}: on Spark, a file of vectors must be .parquet or .csv; got "
                         f"{local.suffix!r} (run it without `spark_master`).")
    return str(local) if not remote else text


# ----------------------------------------------------------------------------- embedding
def detect_mode(spark, images) -> str:
    """``L`` when every readable image is grey, else ``RGB`` (as the one-process loader decides): only
    the raw-pixel encoder's output depends on it, so only it pays for this pass over the files."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def mode(contents: pd.Series) -> pd.Series:
        import io

        from PIL import Image

        def one(blob):
            try:
                with Image.open(io.BytesIO(bytes(blob))) as image:
                    return image.mode
            except Exception:  # an unreadable file takes no part in the choice, as in the loader
                return None
        return contents.map(one)

    from selector.stages.data import GREY_MODES

    modes = {row[0] for row in images.select(mode("content")).distinct().collect() if row[0] is not None}
    return "L" if modes and modes <= GREY_MODES else "RGB"


def embed_udf(spark, config: dict, weights_state, batch_size: int, device: str = "auto"):
    """A pandas UDF: image bytes → (``vector``, ``error``), the encoder of ``config`` built once per task
    on the executor from weights shipped by the driver."""
    from pyspark.sql.functions import pandas_udf

    weights = ""
    if weights_state is not None:
        from safetensors.torch import save_file

        folder = Path(tempfile.mkdtemp(prefix="selector-spark-"))
        path = folder / f"encoder-{config['name'].replace('/', '_').replace('@', '_')}.safetensors"
        save_file({key: value.contiguous() for key, value in weights_state.items()}, str(path))
        spark.sparkContext.addFile(str(path))
        weights = path.name

    def embed_batches(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from pyspark import SparkFiles

        encoder = executor_encoder(config, SparkFiles.get(weights) if weights else "", device)
        for contents in batches:
            vectors, errors = embed_bytes(encoder, list(contents), batch_size)
            yield pd.DataFrame({"vector": [None if v is None else v.tolist() for v in vectors],
                                "error": [errors.get(i) for i in range(len(vectors))]})

    return pandas_udf(embed_batches, EMBEDDING)


_BUILT: dict = {}  # on an executor's Python worker: the encoders it built (workers are reused across tasks)


def executor_encoder(config: dict, weights: str, device: str):
    """The encoder of ``config`` with the shipped ``weights``, built once per Python worker."""
    import json

    from selector.stages.encoders import serving_encoder

    key = (json.dumps(config, sort_keys=True), weights, device)
    if key not in _BUILT:
        _BUILT[key] = serving_encoder(config, weights=weights, device=device)
    return _BUILT[key]


def embed_bytes(encoder, blobs: list, batch_size: int) -> tuple[list, dict[int, str]]:
    """Decode, prepare and forward image bytes as the one-process embedding stage does; an undecodable
    one gets ``None`` and its message."""
    from selector.stages.data import ImageDecodeError, decode_image
    from selector.stages.embedding import forward_prepared

    prepared, errors = {}, {}
    for row, blob in enumerate(blobs):
        try:
            prepared[row] = encoder.preprocess(decode_image(bytes(blob), source="image"))
        except ImageDecodeError as exc:
            errors[row] = str(exc)
    vectors = [None] * len(blobs)
    for row, vector in zip(prepared, forward_prepared(encoder, list(prepared.values()), batch_size)):
        vectors[row] = np.asarray(vector, dtype=np.float32)
    return vectors, errors
