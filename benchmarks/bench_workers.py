"""Trials per minute with 1, 2 and 3 `tune` workers on one study (PostgreSQL + basic-auth tracking server).

    python benchmarks/bench_workers.py --workers 1,2,3 --n_trials 8 --repeats 3

``--local``: one `tune` command with its ``workers`` parameter on the embedded defaults (journal file,
SQLite tracking) in a fresh directory, ``--n_trials`` in all, as a user runs it; checks that the study
holds exactly ``n_trials`` trials, each with one trial run, none lost or run twice.

    python benchmarks/bench_workers.py --local --workers 1,2 --n_trials 40 --repeats 3

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
import report  # benchmarks/report.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--n_trials", type=int, default=8, help="trials per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--clusterers", default="all")
    parser.add_argument("--local", action="store_true", help="one `tune` command with `workers`, local defaults")
    args = parser.parse_args()
    if args.local:
        local(args)
        return

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


def local(args) -> None:
    import subprocess
    import sys
    import time

    import mlflow
    import optuna

    project = Path(__file__).resolve().parents[1]
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        seconds, windows = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
                env["SELECTOR_CACHE_DIR"] = str(Path(tmp) / "cache")
                start = time.perf_counter()
                done = subprocess.run([sys.executable, str(project / "entrypoints" / "tune.py"), "--dataset",
                                       args.dataset, "--encoder", args.encoder, "--clusterers", args.clusterers,
                                       "--n_trials", str(args.n_trials), "--workers", str(workers),
                                       "--study_name", "bench"], cwd=tmp, env=env, capture_output=True, text=True)
                seconds.append(time.perf_counter() - start)
                assert done.returncode == 0, done.stderr[-3000:]
                trials = optuna.load_study(study_name="bench", storage=optuna.storages.JournalStorage(
                    optuna.storages.journal.JournalFileBackend(str(Path(tmp) / "optuna_journal.log")))).trials
                client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}")
                runs = client.search_runs(["0"], max_results=1000)
                numbers = sorted(int(r.data.tags["optuna_trial_number"]) for r in runs
                                 if "optuna_trial_number" in r.data.tags)
                assert len(trials) == args.n_trials and numbers == list(range(args.n_trials)), (len(trials), numbers)
                # The trials' own window: first trial start to last trial end (the command's fixed costs left out).
                windows.append((max(t.datetime_complete for t in trials)
                                - min(t.datetime_start for t in trials)).total_seconds())
        rows.append((workers, statistics.median(seconds), min(seconds), max(seconds), statistics.median(windows)))
    base = rows[0][1]
    print(f"\n{args.dataset}/{args.encoder}, one `tune` command, {args.n_trials} trials, fresh directory and cache, "
          f"median of {args.repeats}; every run: {args.n_trials} trials, {args.n_trials} trial runs, none lost or twice")
    print("| workers | command s (median) | min–max | trials/min | speed-up | trials' window s | trials/min in it | "
          "speed-up |\n|---|---|---|---|---|---|---|---|")
    base_window = rows[0][4]
    for workers, wall, low, high, window in rows:
        print(f"| {workers} | {wall:.1f} | {low:.1f}–{high:.1f} | {args.n_trials / wall * 60:.1f} | {base / wall:.2f}× "
              f"| {window:.1f} | {args.n_trials / window * 60:.1f} | {base_window / window:.2f}× |")


if __name__ == "__main__":
    report.run(main, "bench_workers: " + __doc__.strip().splitlines()[0])
