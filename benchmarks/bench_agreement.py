"""Does the served path give training images their training clusters back?

For a few pipelines on `digits`, fit on the embeddings (as `register` does), then send every training
image through the served model's path — PNG bytes → decode → encoder → reducer.transform → assign —
and report the share that lands in its training cluster.

    python benchmarks/bench_agreement.py --encoder raw
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

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


def main() -> None:
    from registry.model import ClusterPipelineModel
    from registry.promote import png_base64
    from selector.data import load_dataset
    from selector.embedding import embed
    from selector.encoders import create_encoder
    from selector.pipeline import FittedPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="raw")
    args = parser.parse_args()
    data = load_dataset("digits")
    embedded = embed(data, args.encoder, progress=False)
    request = pd.DataFrame({"image": [png_base64(image) for image in data.images.arrays]})
    served = ClusterPipelineModel()
    config = embedded.encoder
    served.encoder = create_encoder(config["name"], image_size=config.get("image_size", 0), mode=config.get("mode", "RGB"))
    print(f"| pipeline ({args.encoder}, digits) | clusters | agreement | predict s |\n|---|---|---|---|")
    for name, (reducer, clusterer) in PIPELINES.items():
        served.pipeline = FittedPipeline(reducer, clusterer, seed=0).fit(embedded.vectors)
        start = time.perf_counter()
        answer = served.predict(None, request)
        seconds = time.perf_counter() - start
        agreement = float((answer["cluster"].to_numpy() == served.pipeline.labels_).mean())
        n = len(set(served.pipeline.labels_) - {-1})
        print(f"| {name} | {n} | {agreement:.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
