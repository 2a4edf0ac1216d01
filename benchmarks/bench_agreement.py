"""Does the served path give training images their training clusters back, and place unseen ones well?

For a few pipelines on `digits`, fit on the embeddings (as `register` does), then send every training
image through the served model's path — PNG bytes → decode → encoder → reducer.transform → assign —
and report the share that lands in its training cluster.

    python benchmarks/bench_agreement.py --encoder raw

With ``--held_out F``, fit on a seeded (1 − F) of the points instead and place the rest as new points:
the AMI of the held-out points' clusters against their true labels, beside the training points' AMI,
for selector's UMAP (``GraphUMAP``: placed at their fitted neighbours' weighted mean) and for
umap-learn's own ``transform`` (the same start, then refining epochs), over ``--seeds``.

    python benchmarks/bench_agreement.py --encoder raw --held_out 0.2 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

UMAP = {"name": "umap", "scaling": "none", "n_components": 10, "n_neighbors": 30, "min_dist": 0.0,
        "metric": "euclidean"}
PIPELINES = {
    "umap → kmeans(k=10)": (UMAP, {"name": "kmeans", "n_clusters": 10}),
    "umap → agglomerative(ward, k=10)": (UMAP, {"name": "agglomerative", "linkage": "ward", "mode": "k",
                                                "n_clusters": 10}),
    "umap → hdbscan(mcs=20)": (UMAP, {"name": "hdbscan", "min_cluster_size": 20, "min_samples": 5,
                                      "cluster_selection_method": "eom"}),
    "pca(20) → gmm(k=10)": ({"name": "pca", "scaling": "zscore", "n_components": 20},
                           {"name": "gmm", "n_clusters": 10, "covariance_type": "full"}),
}


def held_out(encoder: str, fraction: float, seeds: list[int]) -> None:
    import numpy as np
    from sklearn.metrics import adjusted_mutual_info_score as ami
    from sklearn.pipeline import make_pipeline

    from selector.stages.clustering import ClusterModel
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed
    from selector.stages.pipeline import ClusterPipeline
    from selector.stages.reduction import _umap, make_scaler

    embedded = embed(load_dataset("digits"), encoder, progress=False)
    X, y = embedded.vectors, embedded.labels
    rows = []
    for name, (reducer, clusterer) in PIPELINES.items():
        if not name.startswith("umap"):  # the comparison is between two ways UMAP places new points
            continue
        for seed in seeds:
            test = np.random.default_rng(seed).random(len(X)) < fraction
            ours = ClusterPipeline(reducer, clusterer, seed=seed).fit(X[~test])
            theirs_reducer = make_pipeline(make_scaler(reducer["scaling"]), _umap(reducer, int((~test).sum()), seed))
            theirs_model = ClusterModel(clusterer, seed=seed).fit(theirs_reducer.fit_transform(X[~test]))
            theirs_placed = theirs_model.predict(theirs_reducer.transform(X[test]))
            rows.append({"pipeline": name, "seed": seed,
                         "selector train": ami(y[~test], ours.labels_),
                         "selector held-out": ami(y[test], ours.predict(X[test])),
                         "umap-learn train": ami(y[~test], theirs_model.labels_),
                         "umap-learn held-out": ami(y[test], theirs_placed)})
    table = pd.DataFrame(rows).drop(columns="seed").groupby("pipeline", sort=False).median()
    print(f"AMI against the true labels, {encoder} digits, {fraction:.0%} held out, medians over seeds {seeds}:")
    print("| pipeline | " + " | ".join(table.columns) + " |\n|---|" + "---|" * len(table.columns))
    for name, row in table.iterrows():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


def main() -> None:
    from registry.model import MAX_IMAGE_ROWS, ClusterPipelineModel
    from registry.promote import png_base64
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed
    from selector.stages.encoders import create_encoder
    from selector.stages.pipeline import ClusterPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--held_out", type=float, default=0.0, help="fraction of points held out (0 = none)")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    if args.held_out:
        held_out(args.encoder, args.held_out, [int(s) for s in args.seeds.split(",")])
        return
    data = load_dataset("digits")
    embedded = embed(data, args.encoder, progress=False)
    request = pd.DataFrame({"image": [png_base64(image) for image in data.images.arrays]})
    served = ClusterPipelineModel()
    config = embedded.encoder
    served.encoder = create_encoder(config["name"], image_size=config.get("image_size", 0), mode=config.get("mode", "RGB"))
    print(f"| pipeline ({args.encoder}, digits) | clusters | agreement | predict s |\n|---|---|---|---|")
    for name, (reducer, clusterer) in PIPELINES.items():
        served.pipeline = ClusterPipeline(reducer, clusterer, seed=0).fit(embedded.vectors)
        start = time.perf_counter()
        # As a client must: requests of at most MAX_IMAGE_ROWS images.
        answer = pd.concat([served.predict(None, request.iloc[i:i + MAX_IMAGE_ROWS])
                            for i in range(0, len(request), MAX_IMAGE_ROWS)], ignore_index=True)
        seconds = time.perf_counter() - start
        agreement = float((answer["cluster"].to_numpy() == served.pipeline.labels_).mean())
        n = len(set(served.pipeline.labels_) - {-1})
        print(f"| {name} | {n} | {agreement:.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    report.run(main, "bench_agreement: " + __doc__.strip().splitlines()[0])
