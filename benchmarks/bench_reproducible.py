"""The same answer twice: two runs of one seeded `tune` study with two workers, free-running and in
reproducible batches — do they give the same trials and choose the same pipeline, and what do batches cost?

    python benchmarks/bench_reproducible.py [--dataset digits --encoder raw --n_trials 30 --seeds 0 1]

Each run is the `tune` entry point as a user starts it (`--workers 2`, a fresh tracking store and
journal), timed from start to exit. "Same trials": every trial's parameters and objective value equal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

from selector.study.alternatives import chosen_trial  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run(dataset: str, encoder: str, n_trials: int, seed: int, reproducible: bool) -> tuple[float, list, dict, str]:
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "SELECTOR_JOURNAL": f"{tmp}/j.log"}
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "entrypoints" / "tune.py"), "--dataset", dataset, "--encoder", encoder,
                        "--n_trials", str(n_trials), "--seed", str(seed), "--workers", "2",
                        "--reproducible", str(reproducible).lower()],
                       cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(f"{tmp}/j.log"))
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = sorted((t.number, t.state.name, t.value, sorted(t.params.items())) for t in study.trials)
        best = chosen_trial(study)
        return wall, trials, best.params, best.user_attrs.get("n_clusters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--n_trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    print(f"`tune` on `{args.dataset}` with `{args.encoder}`, {args.n_trials} trials, `--workers 2`, "
          "each seed run twice per mode.\n")
    print("| mode | seed | wall s (run 1, run 2) | same trials | same chosen pipeline |")
    print("|---|---|---|---|---|")
    walls = {False: [], True: []}
    for reproducible in (False, True):
        for seed in args.seeds:
            first, second = (run(args.dataset, args.encoder, args.n_trials, seed, reproducible) for _ in range(2))
            walls[reproducible] += [first[0], second[0]]
            print(f"| {'reproducible batches' if reproducible else 'free-running'} | {seed} | "
                  f"{first[0]:.1f}, {second[0]:.1f} | {'yes' if first[1] == second[1] else 'no'} | "
                  f"{'yes' if first[2] == second[2] else 'no'} |", flush=True)
    ratio = statistics.median(walls[True]) / statistics.median(walls[False])
    print(f"\nmedian wall time, reproducible / free-running: {ratio:.2f}")


if __name__ == "__main__":
    report.run(main, "bench_reproducible: " + __doc__.strip().splitlines()[0])
