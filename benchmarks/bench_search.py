"""`tune` against a naive Optuna loop over the same search space and seed.

The naive loop is what one writes first: every trial fits its reducer from scratch, fits the
evaluation-space UMAP again (the silhouette lives in that space) and computes the full silhouette.
No MLflow logging, no caches. `tune` runs as users run it (nested MLflow runs, reports) with an
empty reduction cache; the embeddings are shared (computed once, before either is timed).

    python benchmarks/bench_search.py --n_trials 100 --seed 0 --repeats 3 --naive_repeats 1

Each `tune` repeat starts from an empty reduction cache and a fresh tracking store and journal; the
table gives the median wall time (min–max) over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_search(vectors: np.ndarray, clusterers: list[str], n_trials: int, seed: int) -> tuple[float, float]:
    import optuna

    from selector.clustering import ClusterModel, suggest_clusterer
    from selector.objective import EVAL_SPACE, silhouette_objective
    from selector.reduction import build_reducer, suggest_reducer
    from selector.search import starting_points
    from selector.study import make_sampler

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
    from selector.jobs.tune import tune_job

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    start = time.perf_counter()
    # The naive loop maximises the silhouette; so does this study, for a like-for-like comparison.
    result = tune_job(dataset=dataset, encoder=encoder, n_trials=n_trials, seed=seed,
                      storage=str(workdir / "journal.log"), objective="silhouette",
                      workers=1)  # one process, like the loop
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
    parser.add_argument("--repeats", type=int, default=3, help="`tune` runs, each from empty caches")
    parser.add_argument("--naive_repeats", type=int, default=1, help="naive runs (0 = none; ~20 min each)")
    parser.add_argument("--skip_naive", action="store_true", help="same as --naive_repeats 0")
    args = parser.parse_args()

    from selector.clustering import CLUSTERERS
    from selector.data import load_dataset
    from selector.embedding import embed

    naive_repeats = 0 if args.skip_naive else args.naive_repeats
    with tempfile.TemporaryDirectory() as tmp:
        vectors = embed(load_dataset(args.dataset), args.encoder, progress=False).vectors  # user's cache, warm
        # Compile numba's UMAP code outside both timings (it is cached on disk after the first run).
        from selector.reduction import build_reducer
        build_reducer({"name": "umap", "n_components": 2, "n_neighbors": 5, "min_dist": 0.1}, 100, 0).fit_transform(vectors[:100])

        tuned = []
        for repeat in range(args.repeats):
            workdir = Path(tmp) / f"tune-{repeat}"
            os.environ["SELECTOR_CACHE_DIR"] = str(workdir / "cache")  # empty reduction cache for `tune`
            embed(load_dataset(args.dataset), args.encoder, progress=False)
            seconds, result, where = selector_search(args.dataset, args.encoder, args.n_trials, args.seed, workdir)
            tuned.append((seconds, result, where))
            print(f"tune run {repeat + 1}: {seconds:.0f} s, best {result.metrics['best_silhouette_umap']:.4f}", flush=True)
        naive = []
        for repeat in range(naive_repeats):
            naive.append(naive_search(vectors, list(CLUSTERERS), args.n_trials, args.seed))
            print(f"naive run {repeat + 1}: {naive[-1][0]:.0f} s, best {naive[-1][1]:.4f}", flush=True)

    rows = []
    if naive:
        rows.append(("naive loop (no MLflow)", [s for s, _ in naive], [b for _, b in naive],
                     f"{args.n_trials} evaluation spaces + every trial's own"))
    median_run = sorted(tuned, key=lambda run: run[0])[len(tuned) // 2]
    rows.append(("selector `tune` (nested MLflow runs, reports)", [s for s, _, _ in tuned],
                 [r.metrics["best_silhouette_umap"] for _, r, _ in tuned],
                 f"{median_run[1].work['reductions_fitted']} ({median_run[1].work['neighbour_graphs_built']} kNN graphs)"))
    print(f"\n{args.dataset}/{args.encoder}, {args.n_trials} trials, seed {args.seed}, {vectors.shape[0]}×{vectors.shape[1]}")
    print("| search | runs | wall s (median, min–max) | trials/min | best silhouette_umap | reductions fitted |")
    print("|---|---|---|---|---|---|")
    for name, seconds, bests, fits in rows:
        wall = statistics.median(seconds)
        print(f"| {name} | {len(seconds)} | {wall:.0f} ({min(seconds):.0f}–{max(seconds):.0f}) "
              f"| {args.n_trials / wall * 60:.1f} | {statistics.median(bests):.4f} | {fits} |")
    print("\nwhere the median `tune` run's time went (seconds):")
    for name, value in median_run[2].items():
        print(f"  {name:<62} {value:8.1f}")
    if naive:
        naive_wall, tune_wall = statistics.median(rows[0][1]), statistics.median(rows[1][1])
        print(f"speed-up: {naive_wall / tune_wall:.1f}×; best silhouette "
              f"{statistics.median(rows[1][2]) - statistics.median(rows[0][2]):+.4f} vs naive")


if __name__ == "__main__":
    main()
