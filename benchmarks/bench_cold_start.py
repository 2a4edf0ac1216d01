"""Cold start of served models, one of each clusterer and of each reducer: process start → first answer.

    python benchmarks/bench_cold_start.py [--repeats 2]

Fits one pipeline per row on the `digits` images under the `raw` encoder (as `register` refits a
study's choice), logs each as the registered model is logged (a throw-away tracking store), and starts
`mlflow models serve` on it ``--repeats`` times: loading (process start → `/ping` answers: the model
loaded and warmed up) and the first answer (→ the first one-image request answered); medians. The
format-2 model stored in `tests/data/format2/raw_umap_hdbscan` (a joblib pickle and the `model.py` of its
time, read by today's package) is served the same way, for reference. Then, in a fresh process per model, where loading goes:
importing MLflow, `mlflow.pyfunc.load_model` (MLflow's checks, reading the pipeline, building the encoder,
the warm-up request).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from stack import model_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
UMAP = {"name": "umap", "scaling": "none", "n_components": 10, "n_neighbors": 15, "min_dist": 0.0, "metric": "euclidean"}
ROWS = [  # (reducer, clusterer): every clusterer after UMAP, and HDBSCAN after each reducer
    (UMAP, {"name": "kmeans", "n_clusters": 10}),
    (UMAP, {"name": "agglomerative", "linkage": "ward", "mode": "k", "n_clusters": 10}),
    (UMAP, {"name": "hdbscan", "min_cluster_size": 20, "min_samples": 5, "cluster_selection_method": "eom"}),
    (UMAP, {"name": "spectral", "n_clusters": 10, "n_neighbors": 15}),
    (UMAP, {"name": "affinity_propagation", "damping": 0.9, "preference_quantile": 0.05}),
    (UMAP, {"name": "gmm", "n_clusters": 10, "covariance_type": "full"}),
    ({"name": "pca", "scaling": "zscore", "n_components": 20},
     {"name": "hdbscan", "min_cluster_size": 20, "min_samples": 5, "cluster_selection_method": "eom"}),
    ({"name": "none", "scaling": "none"},
     {"name": "hdbscan", "min_cluster_size": 20, "min_samples": 5, "cluster_selection_method": "eom"}),
]
BREAKDOWN = """
import time
start = time.perf_counter()
import mlflow
imported = time.perf_counter()
model = mlflow.pyfunc.load_model({path!r})
loaded = time.perf_counter()
import sys
print({{"import_mlflow": imported - start, "load_model": loaded - imported,
        "torch_imported": "torch" in sys.modules,
        "umap_or_hdbscan_imported": bool({{"umap", "hdbscan"}} & {{m.split(".")[0] for m in sys.modules}})}})
"""


def log_models(folder: Path, rows: list) -> list[tuple[str, Path]]:
    import mlflow

    from registry.promote import log_pipeline_model
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed
    from selector.stages.encoders import serving_files
    from selector.stages.pipeline import ClusterPipeline

    data = load_dataset("digits")
    embedded = embed(data, "raw", progress=False)
    config, weights = serving_files(embedded.encoder, "")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    models = []
    for reducer, clusterer in rows:
        pipeline = ClusterPipeline(reducer, clusterer, seed=0).fit(embedded.vectors)
        with mlflow.start_run():
            info = log_pipeline_model(pipeline, config, weights, [data.images[0], data.images[1]])
        local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(folder / f"m{len(models)}")))
        models.append((f"{reducer['name']} → {clusterer['name']}", local))
    return models


def png_request() -> bytes:
    from registry.promote import png_base64
    from selector.stages.data import load_dataset

    image = png_base64(load_dataset("digits").images[7])
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[image]]}}).encode()


def serve_once(model: Path, body: bytes, env: dict | None = None) -> tuple[float, float]:
    """Seconds until the server answers /ping, then until it answers one one-image request."""
    with model_server(str(model), env) as (port, loaded):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        asked = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
        return loaded, time.perf_counter() - asked


def breakdown(model: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", BREAKDOWN.format(path=str(model))], capture_output=True, text=True,
                          check=True, env=dict(os.environ))
    import ast

    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", type=int, default=len(ROWS), help="the first N models of the table")
    args = parser.parse_args()
    body = png_request()
    with tempfile.TemporaryDirectory() as tmp:
        models = log_models(Path(tmp), ROWS[:args.rows])
        models.append(("format 2 (pickle): umap → hdbscan", ROOT / "tests" / "data" / "format2" / "raw_umap_hdbscan"))
        print(f"`raw` encoder on `digits`; `mlflow models serve`, {args.repeats} starts each (medians).\n")
        print("| model | pipeline artifact (KB) | loading (s) | first answer (ms) | cold start (s) | "
              "load_model in-process (s) | torch imported | umap/hdbscan imported |")
        print("|---|---|---|---|---|---|---|---|")
        for name, path in models:
            runs = [serve_once(path, body) for _ in range(args.repeats)]
            loads, firsts = [r[0] for r in runs], [r[1] for r in runs]
            parts = breakdown(path)
            size = sum(f.stat().st_size for f in (path / "artifacts").iterdir() if f.name.startswith("pipeline")) / 1024
            print(f"| {name} | {size:.0f} | {statistics.median(loads):.1f} | {statistics.median(firsts) * 1000:.0f} | "
                  f"{statistics.median(a + b for a, b in runs):.1f} | {parts['load_model']:.1f} | "
                  f"{'yes' if parts['torch_imported'] else 'no'} | "
                  f"{'yes' if parts['umap_or_hdbscan_imported'] else 'no'} |", flush=True)
        with tempfile.TemporaryDirectory() as empty:  # a new machine: numba compiles the placement first
            name, path = next(((n, p) for n, p in models if n == "umap → hdbscan"), models[0])
            loaded, first = serve_once(path, body, env={"NUMBA_CACHE_DIR": empty})
            print(f"\nFirst start on a new machine (empty numba cache), {name}: loading {loaded:.1f} s, first answer "
                  f"{first * 1000:.0f} ms, cold start {loaded + first:.1f} s.")
        legacy = ROOT / "tests" / "data" / "format2" / "raw_umap_hdbscan" / "artifacts" / "pipeline.joblib"
        import joblib

        from selector.stages import portable

        with tempfile.TemporaryDirectory() as again:
            files = portable.save(joblib.load(legacy), again)
            print(f"The format-2 model's pipeline re-exported: {legacy.stat().st_size / 1024:.0f} KB as a pickle, "
                  f"{sum(f.stat().st_size for f in files) / 1024:.0f} KB as format 3.")


if __name__ == "__main__":
    report.run(main, "bench_cold_start: " + __doc__.strip().splitlines()[0])
