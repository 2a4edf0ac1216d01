"""PLSCAN (fast-hdbscan's persistence-ranked layers of HDBSCAN's hierarchy) as a label-free answer,
against the default objective's choice from the same case's pool of trials.

PLSCAN reads HDBSCAN's hierarchy over a range of minimum cluster sizes and ranks the resolutions
("layers") it finds by how long they persist; its most persistent layer is its answer, with no k and no
objective. Here it runs in each study's evaluation space (the paper's UMAP, as the objectives see it) at
three ``min_samples``; per (set, encoder): the most persistent layer's k, noise and AMI (noise counted as
``validation_metrics`` counts it), the best layer's AMI (an oracle over its layers), and — when
``bench_selection --phase paired`` has stored the case's seed-0 pool under ``--out`` — the default
objective's choice from that pool and the pool's best trial. Embeddings come from the cache.

    pip install fast-hdbscan
    python benchmarks/bench_plscan.py --sets yale27,faces24,cifar10,aerial30 --encoders efficientnet_lite0,efficientnet_lite1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_selection  # noqa: E402
import report  # noqa: E402


def cases(name: str, encoder: str, min_samples: list[int], out: Path) -> list[dict]:
    """One row per ``min_samples`` for (set, encoder): the embedding and its evaluation space built once."""
    import fast_hdbscan

    from selector.stages.embedding import embed
    from selector.stages.objective import DEFAULT_OBJECTIVE, build_eval_space, validation_metrics
    from selector.stages.reduction import ReductionCache

    embedded = embed(bench_selection.build(name), encoder, progress=False)
    space = build_eval_space(embedded.vectors, ReductionCache(None, embedded.key), 0)
    y = embedded.labels
    pool = out / f"pool-{name}-{encoder}-0-30.json"
    trials = json.loads(pool.read_text())["trials"] if pool.is_file() else []
    chosen = bench_selection.choose(trials, DEFAULT_OBJECTIVE)["ami"] if trials else float("nan")
    rows = []
    for samples in min_samples:
        start = time.perf_counter()
        fitted = fast_hdbscan.PLSCAN(min_samples=samples, base_min_cluster_size=5, reproducible=True).fit(space.coords)
        seconds = time.perf_counter() - start
        top = fitted.labels_
        rows.append({"set": name, "half": bench_selection.half(name), "encoder": encoder, "min_samples": samples,
                     "true_k": int(len(np.unique(y))), "plscan_k": int(len(set(top.tolist()) - {-1})),
                     "plscan_noise": float((top == -1).mean()), "plscan_ami": validation_metrics(y, top)["ami"],
                     "best_layer_ami": max(validation_metrics(y, labels)["ami"] for labels in fitted.cluster_layers_),
                     "layers": len(fitted.cluster_layers_), "plscan_seconds": seconds, "pool_chosen_ami": chosen,
                     "pool_oracle_ami": max((t["ami"] for t in trials), default=float("nan"))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="yale27,faces24,cifar10,aerial30")
    parser.add_argument("--encoders", default="efficientnet_lite0,efficientnet_lite1")
    parser.add_argument("--min_samples", default="3,5,10")
    parser.add_argument("--out", default=str(Path.home() / ".cache" / "selector" / "bench_selection"))
    parser.add_argument("--name", default="bench_plscan")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import fast_hdbscan  # noqa: F401  (refuse early, with pip's own message, when it is missing)

    min_samples = [int(m) for m in args.min_samples.split(",")]
    rows = [row for n in bench_selection.parse_sets(args.sets) for e in args.encoders.split(",")
            for row in cases(n, e, min_samples, Path(args.out))]
    frame = pd.DataFrame(rows)
    body = ["PLSCAN's most persistent layer in each case's evaluation space (seed 0), `base_min_cluster_size` 5, "
            "`reproducible=True`; the first fit in the process compiles fast-hdbscan's numba code (the first "
            "row's seconds). "
            "*best_layer_ami*: the best of its layers (an oracle over them); *pool_chosen_ami*: the default "
            "objective's choice from the case's seed-0 pool of 30 trials (`bench_selection --phase paired`), "
            "*pool_oracle_ami*: that pool's best trial.\n", bench_selection.markdown(frame)]
    pooled = frame[frame["pool_chosen_ami"].notna()]
    means = pooled.groupby("min_samples")[["plscan_ami", "best_layer_ami", "pool_chosen_ami", "pool_oracle_ami"]].mean()
    body += [f"\nMeans over the {pooled['set'].str.cat(pooled['encoder']).nunique()} cases with a stored pool, "
             "per `min_samples`:\n", bench_selection.markdown(means.reset_index())]
    print("\n".join(body))
    report.write(args.name, "bench_plscan: PLSCAN's persistent layers against the objective's choice", "\n".join(body))


if __name__ == "__main__":
    main()
