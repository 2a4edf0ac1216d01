"""Trials per minute with 1, 2 and 3 `tune` workers on one study (PostgreSQL + basic-auth tracking server).

    python benchmarks/bench_workers.py --workers 1,2,3 --n_trials 8 --repeats 3

Every run is a fresh stack (new databases, new server, new study) with an empty selector cache, so
reductions are computed in the run (and shared by the workers through the disk cache); numba's
compiled code stays cached. Wall time counts from the workers' start (imports, embedding and the
evaluation-space UMAP included) to the last worker's exit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from stack import run_stack  # benchmarks/stack.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--n_trials", type=int, default=8, help="trials per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--clusterers", default="all")
    args = parser.parse_args()

    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        rates, trial_medians = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["SELECTOR_CACHE_DIR"] = str(Path(tmp) / "cache")
                result = run_stack(args.postgres, workers, args.n_trials, Path(tmp), args.dataset, args.encoder,
                                   args.clusterers)
            assert not any(result["exit_codes"]), result
            rates.append(result["complete"] / result["seconds"] * 60)
            trial_medians.append(statistics.median(result["trial_seconds"]))
        rows.append((workers, workers * args.n_trials, statistics.median(rates), min(rates), max(rates),
                     statistics.median(trial_medians)))
    base = rows[0][2]
    print(f"\n{args.dataset}/{args.encoder}, {args.n_trials} trials per worker, median of {args.repeats} runs")
    print("| workers | trials | trials/min (median) | min–max | speed-up | median trial s |")
    print("|---|---|---|---|---|---|")
    for workers, trials, rate, low, high, trial_s in rows:
        print(f"| {workers} | {trials} | {rate:.1f} | {low:.1f}–{high:.1f} | {rate / base:.2f}× | {trial_s:.1f} |")


if __name__ == "__main__":
    main()
