"""`tune` against a naive Optuna loop over the same search space and seed.

The naive loop is what one writes first: every trial fits its reducer from scratch, fits the
evaluation-space UMAP again (the silhouette lives in that space) and computes the full silhouette.
No MLflow logging, no caches. `tune` runs as users run it (nested MLflow runs, reports) with an
empty reduction cache; the embeddings are shared (computed once, before either is timed).

    python benchmarks/bench_search.py --n_trials 100 --seed 0
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_search(vectors: np.ndarray, clusterers: list[str], n_trials: int, seed: int) -> tuple[float, float]:
    import optuna

    from selector.clustering import ClusterModel, suggest_clusterer
    from selector.objective import EVAL_SPACE, silhouette_objective
    from selector.reduction import build_reducer, suggest_reducer
    from selector.search import make_sampler, starting_points

    n, dim = vectors.shape

    def objective(trial: optuna.Trial) -> float:
        reducer = suggest_reducer(trial, n, dim)
        clusterer = suggest_clusterer(trial, n, clusterers)
        reduced = build_reducer(reducer, n, seed).fit_transform(vectors)
        labels = ClusterModel(clusterer, seed=seed).fit(reduced).labels_
        space = build_reducer(EVAL_SPACE, n, seed).fit_transform(vectors)
        return silhouette_objective(space, labels, seed=seed, sample_bound=np.inf).value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(seed))
    for point in starting_points(clusterers):
        study.enqueue_trial(point)
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, catch=(Exception,))
    return time.perf_counter() - start, study.best_value


def selector_search(dataset: str, encoder: str, n_trials: int, seed: int, workdir: Path):
    from selector.jobs import tune_job

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    start = time.perf_counter()
    result = tune_job(dataset=dataset, encoder=encoder, n_trials=n_trials, seed=seed,
                      storage=str(workdir / "journal.log"))
    seconds = time.perf_counter() - start
    return seconds, result, profile(result, seconds)


def profile(result, wall: float) -> dict:
    """Where the study's wall time went: the trials' stages, the rest of each trial (sampling and
    MLflow logging), and what happens outside trials (set-up, evaluation space, reports)."""
    trials = [t for t in result.study.trials if t.duration is not None]
    stages = {name: sum(t.user_attrs.get(name, 0.0) for t in trials)
              for name in ("reduce_seconds", "cluster_seconds", "score_seconds")}
    in_trials = sum(t.duration.total_seconds() for t in trials)
    return {"evaluation space (once)": result.work["eval_space_seconds"], **stages,
            "trial overhead (sampler, MLflow logging)": in_trials - sum(stages.values()),
            "outside trials (set-up, reports; includes evaluation space)": wall - in_trials, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--n_trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip_naive", action="store_true")
    args = parser.parse_args()

    from selector.clustering import CLUSTERERS
    from selector.data import load_dataset
    from selector.embedding import embed

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        vectors = embed(load_dataset(args.dataset), args.encoder, progress=False).vectors  # user's cache, warm
        os.environ["SELECTOR_CACHE_DIR"] = str(workdir / "cache")  # empty reduction cache for `tune`
        embed(load_dataset(args.dataset), args.encoder, progress=False)
        # Compile numba's UMAP code outside both timings (it is cached on disk after the first run).
        from selector.reduction import build_reducer
        build_reducer({"name": "umap", "n_components": 2, "n_neighbors": 5, "min_dist": 0.1}, 100, 0).fit_transform(vectors[:100])

        tuned_s, result, where = selector_search(args.dataset, args.encoder, args.n_trials, args.seed, workdir)
        rows = [("selector tune", tuned_s, result.metrics["best_silhouette_umap"],
                 f"{result.work['reductions_fitted']} (kNN graphs: {result.work['neighbour_graphs_built']})")]
        if not args.skip_naive:
            naive_s, naive_best = naive_search(vectors, list(CLUSTERERS), args.n_trials, args.seed)
            rows.insert(0, ("naive loop", naive_s, naive_best, f"{args.n_trials} evaluation spaces + every trial's own"))

    print(f"\n{args.dataset}/{args.encoder}, {args.n_trials} trials, seed {args.seed}, {vectors.shape[0]}×{vectors.shape[1]}")
    print("| search | wall s | trials/min | best silhouette_umap | reductions fitted |")
    print("|---|---|---|---|---|")
    for name, seconds, best, fits in rows:
        print(f"| {name} | {seconds:.0f} | {args.n_trials / seconds * 60:.1f} | {best:.4f} | {fits} |")
    print("\nwhere `tune`'s time went (seconds):")
    for name, value in where.items():
        print(f"  {name:<62} {value:8.1f}")
    if len(rows) == 2:
        print(f"speed-up: {rows[0][1] / rows[1][1]:.1f}×; best silhouette {rows[1][2] - rows[0][2]:+.4f} vs naive")


if __name__ == "__main__":
    main()
