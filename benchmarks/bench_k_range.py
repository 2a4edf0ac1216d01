"""What searching k up to n/5 (log-uniform) costs against the old bound (√n, at most 100, uniform).

Whole `tune` studies in this process (one worker, MLflow in a throw-away store) on the same data and
seeds, once per k range; per range the medians over seeds of wall time, clustering seconds, declined
trials, the largest k tried, the chosen k and AMI (when labels exist).

    python benchmarks/bench_k_range.py --sets digits --encoder raw --seeds 0,1,2 --n_trials 30
    python benchmarks/bench_k_range.py --sets signs40x10,faces24 --encoder efficientnet_lite0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

from selector.study.alternatives import chosen_trial  # noqa: E402


def old_suggest_k(trial, n: int) -> int:
    """The bound before: √n, at most 100, drawn uniformly."""
    return trial.suggest_int("clusterer.n_clusters", 2, int(max(2, min(100, int(np.sqrt(n)), n - 1))))


def run(dataset: str, encoder: str, seed: int, n_trials: int, k_range: str) -> dict:
    import optuna

    from selector.stages import clusterers
    from selector.stages.data import BUILTIN_DATASETS
    from selector.jobs.tune import tune_job

    import real
    import suite

    for name in list(suite.BUILDERS) + list(real.SETS):
        if name not in BUILTIN_DATASETS:
            BUILTIN_DATASETS[name] = (lambda n=name: real.build(n) if n in real.SETS else suite.build(n))
    here = os.getcwd()
    original = clusterers.suggest_k
    clusterers.suggest_k = old_suggest_k if k_range == "sqrt" else original
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
            os.environ["SELECTOR_JOURNAL"] = f"{tmp}/journal.log"
            os.chdir(tmp)  # MLflow's artifacts (./mlruns) land in the throw-away folder too
            start = time.perf_counter()
            result = tune_job(dataset=dataset, encoder=encoder, n_trials=n_trials, seed=seed, workers=1,
                              study_name=f"{dataset}-{encoder}-{seed}-{k_range}")
            wall = time.perf_counter() - start
            every = result.study.trials  # read while the journal is still there
            best = chosen_trial(result.study)
            os.chdir(here)
    finally:
        clusterers.suggest_k = original
    trials = [t for t in every if t.state == optuna.trial.TrialState.COMPLETE]
    tried = [t.params["clusterer.n_clusters"] for t in every if "clusterer.n_clusters" in t.params]
    scored = [t for t in trials if "ami" in t.user_attrs]
    top = max(scored, key=lambda t: t.user_attrs["ami"]) if scored else None
    return {"set": dataset, "encoder": encoder, "seed": seed, "k_range": k_range, "wall_s": wall,
            "cluster_s": sum(t.user_attrs.get("cluster_seconds", 0.0) for t in trials),
            "declined": sum(t.state == optuna.trial.TrialState.PRUNED for t in every),
            "max_k_tried": max(tried) if tried else None, "chosen_k": best.user_attrs.get("n_clusters"),
            "best_ami": result.metrics.get("best_ami"), "oracle_ami": result.metrics.get("oracle_ami"),
            "oracle_k": top.user_attrs.get("n_clusters") if top else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n_trials", type=int, default=30)
    parser.add_argument("--name", default="bench_k_range")
    args = parser.parse_args()
    rows = [run(name, args.encoder, int(seed), args.n_trials, k_range)
            for name in args.sets.split(",") for seed in args.seeds.split(",") for k_range in ("sqrt", "wide")]
    frame = pd.DataFrame(rows)
    table = frame.groupby(["set", "encoder", "k_range"]).median(numeric_only=True).drop(columns="seed").reset_index()
    from bench_selection import markdown

    body = (f"Whole `tune` studies, {args.n_trials} trials, seeds {args.seeds}, one worker; medians over seeds. "
            "`sqrt`: k in 2…min(100, √n), uniform (the bound before); `wide`: k in 2…min(500, n/5), log-uniform.\n\n"
            + markdown(table) + "\n\nPer seed:\n\n" + markdown(frame))
    print(body)
    report.write(args.name, "bench_k_range: the cost of searching k up to n/5", body)


if __name__ == "__main__":
    main()
