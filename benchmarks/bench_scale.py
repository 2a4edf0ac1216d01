"""`tune` wall time and peak memory as the data grows: Gaussian-mixture vectors × 256 dims, 50 trials.

Each size runs in a fresh process with empty caches and a throw-away tracking store, with `tune`'s
`workers` (default: its own default, this machine's cores). Peak memory is that process's peak RSS
plus the largest peak of its worker processes: an upper bound of what they held together. Where the
time goes is read back from the trials (reduce / cluster / score seconds, summed over workers).

    python benchmarks/bench_scale.py --sizes 2000,10000,50000 --n_trials 50
    python benchmarks/bench_scale.py --sizes 200000 --n_trials 50 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402


def mixture(n: int, dim: int, components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters of unequal size and spread, with labels (reported, never used to choose)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(components, 3.0))
    labels = rng.choice(components, size=n, p=weights)
    centres = rng.normal(scale=4.0, size=(components, dim))
    spreads = rng.uniform(0.6, 1.6, size=components)
    return (centres[labels] + rng.normal(size=(n, dim)) * spreads[labels, None]).astype(np.float32), labels


def child(n: int, dim: int, n_trials: int, seed: int, workers: int, workdir: Path) -> dict:
    from selector.jobs.tune import tune_job

    X, y = mixture(n, dim, components=12, seed=seed)
    path = workdir / f"mixture_{n}.npz"
    np.savez(path, X=X, y=y)
    start = time.perf_counter()
    result = tune_job(dataset=str(path), encoder="none", n_trials=n_trials, seed=seed, storage=str(workdir / "journal.log"),
                      workers=workers)
    wall = time.perf_counter() - start
    trials = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    stage = {name: float(sum(t.user_attrs.get(name, 0.0) for t in trials))
             for name in ("reduce_seconds", "cluster_seconds", "score_seconds", "objective_seconds")}
    sampled = sum(t.user_attrs.get("clusterer_fit_sample", 0) > 0 for t in trials)
    per_clusterer: dict = {}
    for t in trials:  # which clusterers the clustering seconds went to
        per_clusterer[t.params["clusterer"]] = per_clusterer.get(t.params["clusterer"], 0.0) + t.user_attrs.get(
            "cluster_seconds", 0.0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"n": n, "wall": wall, "peak_gib": peak_kib / 2**20, "workers": workers,
            "complete": len(trials), "failed": result.metrics.get("n_trials_failed", 0),
            "declined": result.metrics.get("n_trials_declined", 0),
            "objective": result.study.user_attrs.get("objective"), "best": result.metrics.get("best_objective_value"),
            "best_silhouette": result.metrics.get("best_silhouette_umap"), "best_ami": result.metrics.get("best_ami"),
            "per_clusterer_seconds": per_clusterer, "eval_space_seconds": result.work["eval_space_seconds"],
            "reductions_fitted": result.work["reductions_fitted"], "clusterer_sampled": sampled, **stage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000,50000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--n_trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="`tune`'s workers (0 = its default, the cores)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        workdir = Path(os.environ["BENCH_WORKDIR"])
        print("RESULT " + json.dumps(child(args.child, args.dim, args.n_trials, args.seed, args.workers, workdir)))
        return

    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "BENCH_WORKDIR": tmp, "SELECTOR_CACHE_DIR": str(Path(tmp) / "cache"),
                   "MLFLOW_TRACKING_URI": f"sqlite:///{Path(tmp) / 'mlflow.db'}"}
            done = subprocess.run([sys.executable, __file__, "--child", str(n), "--dim", str(args.dim),
                                   "--n_trials", str(args.n_trials), "--seed", str(args.seed),
                                   "--workers", str(args.workers)],
                                  env=env, cwd=tmp, capture_output=True, text=True)
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {n} failed with exit code {done.returncode}")
        rows.append(json.loads(line[0][len("RESULT "):]))
        print(json.dumps(rows[-1]), flush=True)

    print(f"\nGaussian mixture × {args.dim} dims, {args.n_trials} trials, seed {args.seed}, objective {rows[0]['objective']}, "
          f"workers {args.workers or 'default (the cores)'}")
    print("| points | wall min | peak GiB | eval-space s | reduce s (fits) | cluster s | score s (objective s) "
          "| complete/declined/failed | clusterer fits on a sample | best objective | its silhouette | its AMI |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['wall'] / 60:.1f} | {r['peak_gib']:.2f} | {r['eval_space_seconds']:.0f} "
              f"| {r['reduce_seconds']:.0f} ({r['reductions_fitted']}) | {r['cluster_seconds']:.0f} "
              f"| {r['score_seconds']:.0f} ({r['objective_seconds']:.1f}) | {r['complete']}/{r['declined']}/{r['failed']} "
              f"| {r['clusterer_sampled']} | {r['best']:.3f} | {r['best_silhouette']:.3f} | {r['best_ami']:.3f} |")
    for r in rows:
        spent = ", ".join(f"{name} {seconds:.0f}" for name, seconds in
                          sorted(r["per_clusterer_seconds"].items(), key=lambda item: -item[1]))
        print(f"{r['n']:,} points, clustering seconds by clusterer: {spent}")


if __name__ == "__main__":
    report.run(main, "bench_scale: " + __doc__.strip().splitlines()[0])
