"""``embed`` and ``predict`` on Apache Spark (``spark_master``): the same answers as the one-process
jobs, a bad file costing only its own row, and a one-line refusal without PySpark or Java."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from selector import spark as spark_stage
from selector.stages.data import encode_png, load_digits_dataset, load_dataset

MASTER = "local[2]"


def spark_missing() -> str:
    """Why Spark cannot run here ('' when it can)."""
    try:
        spark_stage.check_spark(MASTER)
    except spark_stage.SparkUnavailable as exc:
        return str(exc)
    return ""


needs_spark = pytest.mark.skipif(bool(spark_missing()), reason=spark_missing() or "Spark runs")


# ------------------------------------------------------------------ refusals (no Spark started)
def test_without_pyspark_the_job_refuses_in_one_line_saying_what_to_install(monkeypatch):
    from selector.jobs.embed import embed_job
    from selector.jobs.predict import predict_job

    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` fails as if it were not installed
    for job in (lambda: embed_job(dataset="digits", spark_master=MASTER),
                lambda: predict_job(dataset="digits", spark_master=MASTER)):
        with pytest.raises(spark_stage.SparkUnavailable) as refused:
            job()
        message = str(refused.value)
        assert "\n" not in message and "pip install -e '.[spark]'" in message


@pytest.mark.skipif(not shutil.which("java") and "JAVA_HOME" not in __import__("os").environ,
                    reason="no Java here to hide")
def test_without_java_the_job_refuses_in_one_line_naming_the_java_it_needs(monkeypatch, tmp_path):
    pytest.importorskip("pyspark", reason="needs PySpark installed (pip install -e '.[spark]')")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(spark_stage.SparkUnavailable, match=r"needs Java \d+ or newer.*no Java found") as refused:
        spark_stage.check_spark(MASTER)
    assert "\n" not in str(refused.value)


def test_the_command_line_refuses_a_bad_master_before_anything_runs(run_cli, tmp_path, project_root):
    done = run_cli(sys.executable, str(project_root / "entrypoints" / "predict.py"), "--spark_master", "local[two]",
                   cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines[-1].startswith("error: `spark_master` must be") and len(lines) == 1, done.stderr
    assert not (tmp_path / "clusters.csv").exists() and not (tmp_path / "mlruns").exists()


def test_the_image_glob_takes_every_suffix_the_loader_takes_in_either_case():
    import fnmatch

    from selector.stages.data import IMAGE_SUFFIXES

    glob = spark_stage.image_glob()
    alternatives = glob[len("*.{"):-1].split(",")
    assert len(alternatives) == len(IMAGE_SUFFIXES)
    for suffix in (".png", ".jpg", ".jpeg", ".tif", ".webp"):
        for name in (f"a{suffix}", f"a{suffix.upper()}"):
            assert any(fnmatch.fnmatchcase(name, "*." + alt) for alt in alternatives), name
    assert not any(fnmatch.fnmatchcase("notes.txt", "*." + alt) for alt in alternatives)


# ------------------------------------------------------------------ on local Spark
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """90 digit images in class folders (one with an upper-case suffix, one with a space in its name)
    and one corrupt PNG."""
    root = tmp_path_factory.mktemp("photos") / "digits"
    digits = load_digits_dataset()
    for i in range(90):
        name = f"{i:03d}.png" if i not in (5, 6) else ("005.PNG" if i == 5 else "00 6.png")
        path = root / str(digits.labels[i]) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(np.kron(digits.images[i], np.ones((4, 4), np.uint8))))
    (root / "3" / "broken.png").write_bytes(encode_png(digits.images[0])[:40])  # a valid header, cut short
    return root


@pytest.fixture(scope="module")
def raw_model(photos, tmp_path_factory):
    """A raw-pixel model of the photos, registered."""
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELECTOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("SELECTOR_JOURNAL", str(tmp_path_factory.mktemp("journal") / "journal.log"))
        study = tune_job(dataset=str(photos), encoder="raw", n_trials=3, workers=1, clusterers="kmeans,hdbscan")
        register_job(study.parent_run_id, model_name="spark-raw")
    return "models:/spark-raw@champion"


def by_id(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("id").sort_index()


@needs_spark
@pytest.mark.slow
def test_spark_predict_gives_every_image_the_one_process_answer_and_a_corrupt_file_its_error_row(
        photos, raw_model, tmp_path):
    from selector.jobs.predict import predict_job

    one = by_id(predict_job(model_uri=raw_model, dataset=str(photos), output=str(tmp_path / "one.csv")))
    answer = predict_job(model_uri=raw_model, dataset=str(photos), output=str(tmp_path / "spark.csv"),
                         spark_master=MASTER, batch_size=16)
    on_spark = by_id(pd.read_csv(tmp_path / "spark.csv", dtype={"id": str, "label": str}, keep_default_na=False))
    assert len(answer) == len(on_spark) == 91  # every file has its row, the corrupt one included
    broken = on_spark.loc["3/broken.png"]
    assert broken["cluster"] == -1 and broken["confidence"] == 0 and "not a decodable image" in broken["error"]
    good = on_spark.drop(index="3/broken.png")
    assert set(good.index) == set(one.index) - {"3/broken.png"} and {"5/005.PNG", "6/00 6.png"} <= set(good.index)
    assert (good["cluster"] == one.loc[good.index, "cluster"]).all()
    np.testing.assert_allclose(good["confidence"], one.loc[good.index, "confidence"], atol=1e-9)
    assert (good["label"] == one.loc[good.index, "label"].astype(str)).all() and (good["error"] == "").all()
    from registry.spark import batch_rows

    assert batch_rows(raw_model, 5_000)[0] == 1_024  # an image model's request limit caps the Arrow batch


@needs_spark
@pytest.mark.slow
def test_spark_predict_writes_a_parquet_folder_and_logs_its_counts(photos, raw_model, tmp_path):
    import mlflow

    from selector.jobs.predict import predict_job

    predict_job(model_uri=raw_model, dataset=str(photos), output=str(tmp_path / "clusters"), spark_master=MASTER)
    written = pd.read_parquet(tmp_path / "clusters")
    assert len(written) == 91 and written["error"].notna().sum() == 1
    run = mlflow.search_runs(search_all_experiments=True, filter_string="params.spark_master = 'local[2]'",
                             order_by=["start_time DESC"], max_results=1).iloc[0]
    assert run["metrics.n_points"] == 91 and run["metrics.n_refused"] == 1 and run["metrics.spark_start_seconds"] >= 0
    artifacts = mlflow.artifacts.download_artifacts(run_id=run["run_id"], dst_path=str(tmp_path / "logged"))
    assert len(pd.read_csv(f"{artifacts}/clusters.csv")) == 91


@needs_spark
@pytest.mark.slow
def test_spark_embed_gives_the_one_process_vectors_with_the_shipped_weights(photos, tmp_path):
    from selector.jobs.embed import embed_job

    embed_job(dataset=str(photos), encoder="efficientnet_lite0", output=str(tmp_path / "one.parquet"), batch_size=16)
    done = embed_job(dataset=str(photos), encoder="efficientnet_lite0", output=str(tmp_path / "spark.parquet"),
                     spark_master=MASTER, batch_size=16)
    assert done["n_images"] == 90 and done["n_skipped"] == 1
    one, on_spark = load_dataset(str(tmp_path / "one.parquet")), load_dataset(str(tmp_path / "spark.parquet"))
    assert on_spark.feature_names == ["vector"] and on_spark.vectors.shape == (90, 1280)
    row = {name: i for i, name in enumerate(one.ids)}
    order = [row[name] for name in on_spark.ids]
    np.testing.assert_allclose(on_spark.vectors, one.vectors[order], rtol=1e-4, atol=1e-5)
    assert (on_spark.labels == one.labels[order]).all()
    errors = pd.read_parquet(tmp_path / "spark.parquet").dropna(subset=["error"])
    assert errors["id"].tolist() == ["3/broken.png"] and "cannot decode" in errors["error"].iloc[0]


@needs_spark
@pytest.mark.slow
def test_tune_runs_on_the_parquet_spark_writes_and_its_model_predicts_on_spark(photos, raw_model, tmp_path):
    """Images encoded once on Spark: tuned with encoder=none, and either model (that one, or the image
    model through its `vector` column) assigns the same table on Spark."""
    from selector.jobs.embed import embed_job
    from selector.jobs.predict import predict_job
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    table = str(tmp_path / "raw.parquet")
    embed_job(dataset=str(photos), encoder="raw", output=table, spark_master=MASTER)
    study = tune_job(dataset=table, encoder="none", n_trials=2, workers=1, clusterers="kmeans")
    assert len(study.labels) == 90  # the rows with a vector; the corrupt file's row has none
    register_job(study.parent_run_id, model_name="spark-vectors")
    vectors = predict_job(model_uri="models:/spark-vectors@champion", dataset=table,
                          output=str(tmp_path / "v.csv"), spark_master=MASTER)
    assert len(vectors) == 91 and (vectors["cluster"] >= 0).sum() == 90 and (vectors["error"] != "").sum() == 1
    images = by_id(predict_job(model_uri=raw_model, dataset=table, output=str(tmp_path / "i.csv"),
                               spark_master=MASTER))
    one = by_id(predict_job(model_uri=raw_model, dataset=str(photos), output=str(tmp_path / "one.csv")))
    assert (images.loc[one.index, "cluster"] == one["cluster"]).all()


@needs_spark
@pytest.mark.slow
def test_a_csv_of_vectors_is_read_by_spark_and_assigned_as_in_one_process(tmp_path):
    from sklearn.datasets import make_blobs

    from registry.spark import batch_rows
    from selector.jobs.predict import predict_job
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    X, y = make_blobs(n_samples=80, centers=3, n_features=5, random_state=0)
    table = tmp_path / "blobs.csv"
    pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(label=y).to_csv(table, index=False)
    study = tune_job(dataset=str(table), encoder="none", n_trials=2, workers=1, clusterers="kmeans")
    register_job(study.parent_run_id, model_name="spark-blobs")
    model = "models:/spark-blobs@champion"
    one = by_id(predict_job(model_uri=model, dataset=str(table), output=str(tmp_path / "one.csv")))
    on_spark = by_id(predict_job(model_uri=model, dataset=str(table), output=str(tmp_path / "spark.csv"),
                                 spark_master=MASTER))
    assert len(on_spark) == 80 and (on_spark["cluster"] == one.loc[on_spark.index, "cluster"]).all()
    assert (on_spark["label"].astype(int) == one.loc[on_spark.index, "label"].astype(int)).all()
    # an Arrow batch never holds more rows than the model takes in one request
    assert batch_rows(model, 10**9)[0] == 100_000 and batch_rows(model, 64)[0] == 64
