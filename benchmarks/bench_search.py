"""`tune` as a user runs it against a naive Optuna loop over the same search space and seed.

`tune` runs as a whole process — `python entrypoints/tune.py …` in a fresh directory with an empty
cache and the default `workers` (this machine's cores), imports, set-up, evaluation space and
report included — exactly as a new user meets it. The naive loop is what one writes first, in one
process with everything imported, umap-learn's and scikit-learn's classes with their defaults: it fits
the evaluation space once (selector's, so that both maximise the same function: the silhouette there),
then every trial refits its own reducer and clusterer on every point and computes the full silhouette
(no caches, no MLflow).

By default the data are scikit-learn's 1,797 digits as 64-pixel vectors (`encoder=none`, written to
a `.npz` in the temporary folder); `--dataset`/`--encoder` choose another (its embeddings are
computed before either is timed).

    python benchmarks/bench_search.py --n_trials 30 --seeds 0,1,2,3,4
    python benchmarks/bench_search.py --n_trials 100 --seeds 0,1,2
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = "bench"


def plain_reducer(params: dict, seed: int):
    """The trial's reducer as a plain script builds it: the library's own class and defaults."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    from selector.stages.reduction import Identity, make_scaler

    if params["name"] == "umap":
        import umap

        own = umap.UMAP(n_components=params["n_components"], n_neighbors=params["n_neighbors"],
                        min_dist=params["min_dist"], metric=params.get("metric", "euclidean"), random_state=seed)
    elif params["name"] == "pca":
        own = PCA(n_components=params["n_components"], random_state=seed)
    else:
        own = Identity()
    return make_pipeline(make_scaler(params.get("scaling", "none")), own)


def plain_clusterer(estimator):
    """The trial's clusterer as a plain script has it: scikit-learn's affinity propagation, not
    selector's compiled copy of it (same parameters, same labels)."""
    from sklearn.cluster import AffinityPropagation

    from selector.stages.propagation import AffinityPropagation as Compiled

    return AffinityPropagation(**estimator.get_params()) if isinstance(estimator, Compiled) else estimator


def naive_search(vectors: np.ndarray, clusterers: list[str], n_trials: int, seed: int) -> tuple[float, float]:
    """A plain Optuna loop: umap-learn's UMAP with its defaults (500 epochs below 10,000 points, its own
    neighbour search), scikit-learn's and hdbscan's clusterers fitted on every point, the evaluation
    space fitted once, the full silhouette every trial. Same search space, seed and starting points."""
    import warnings

    import optuna

    from selector.stages.clustering import get_clusterer, suggest_clusterer
    from selector.stages.objective import build_eval_space, eval_space_params, silhouette_objective
    from selector.stages.reduction import ReductionCache, suggest_reducer
    from selector.study.trials import starting_points
    from selector.study.session import make_sampler

    warnings.filterwarnings("ignore")  # UMAP's and scikit-learn's notices, every trial
    n, dim = vectors.shape
    start = time.perf_counter()
    params = eval_space_params(vectors)
    # The objective is the same function as `tune`'s: the silhouette in selector's evaluation space,
    # fitted once (no cache: this is its first fit).
    space = build_eval_space(vectors, ReductionCache(None, "naive"), seed).coords

    def objective(trial: optuna.Trial) -> float:
        reducer = suggest_reducer(trial, n, dim)
        clusterer = suggest_clusterer(trial, n, clusterers)
        reduced = plain_reducer(reducer, seed).fit_transform(vectors)
        own = {k: v for k, v in clusterer.items() if k != "name"}
        labels = plain_clusterer(get_clusterer(clusterer["name"]).build(own, reduced, seed)).fit_predict(reduced)
        return silhouette_objective(space, labels, seed=seed, sample_bound=np.inf).value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(seed))
    for point in starting_points(clusterers, params):
        study.enqueue_trial(point)
    study.optimize(objective, n_trials=n_trials, catch=(Exception,))
    return time.perf_counter() - start, study.best_value


def tune_process(dataset: str, encoder: str, n_trials: int, seed: int, workers: int, folder: Path) -> tuple[float, dict]:
    """`tune` as a new process in ``folder`` (its ./mlflow.db and journal), the cache in ``folder/cache``;
    returns its wall seconds and where the time went."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SELECTOR_JOURNAL")}
    env["SELECTOR_CACHE_DIR"] = str(folder / "cache")
    command = [sys.executable, str(ROOT / "entrypoints" / "tune.py"), "--dataset", dataset, "--encoder", encoder,
               "--n_trials", str(n_trials), "--seed", str(seed), "--objective", "silhouette",
               "--study_name", STUDY, "--workers", str(workers)]
    started = time.time()  # the journal's trial times are wall-clock times
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode:
        raise SystemExit(f"tune failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return ended - started, profile(folder, started, ended)


def profile(folder: Path, started: float, ended: float) -> dict:
    """Where a `tune` process's wall time went, from its journal and its parent run: before the first
    trial (imports, checks, evaluation space, set-up), the trials' window — their stages and the rest
    of each trial (sampler, MLflow logging, validation), summed over workers — and after the last."""
    import mlflow
    import optuna

    from selector.study.session import PARENT_ATTR, resolve_storage

    study = optuna.load_study(study_name=STUDY, storage=resolve_storage(str(folder / "optuna_journal.log")))
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials).timestamp()
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    parent = client.get_run(study.user_attrs[PARENT_ATTR])
    metrics = parent.data.metrics
    reductions = folder / "cache" / "reductions"
    stages = {name: sum(t.user_attrs.get(name, 0.0) for t in trials)
              for name in ("reduce_seconds", "cluster_seconds", "score_seconds")}
    in_trials = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    return {"best": float(study.best_trial.user_attrs.get("silhouette_umap", study.best_value)),
            # every process's, from the shared cache: evaluation space and report map included
            "fits": f"{len(list(reductions.glob('*.npy')))} ({len(list(reductions.glob('*.knn.npz')))} kNN graphs)",
            "where": {"start to the first trial (imports, checks, evaluation space, set-up)": first - started,
                      "  of which the evaluation space": metrics.get("eval_space_seconds", float("nan")),
                      "trials' window (first start to last end)": last - first,
                      **{f"  {k} (summed over workers)": v for k, v in stages.items()},
                      "  the rest of the trials: sampler, MLflow logging, validation (summed)":
                          in_trials - sum(stages.values()),
                      "last trial to exit (summary, report, exit)": ended - last,
                      "wall": ended - started}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits-vectors",
                        help="digits-vectors (default: 1,797 × 64, encoder none) or any `tune` data set")
    parser.add_argument("--encoder", default="none")
    parser.add_argument("--n_trials", type=int, default=30)
    parser.add_argument("--seeds", default="0", help="comma list: each seed is one study of each kind")
    parser.add_argument("--workers", type=int, default=0, help="`tune`'s workers (0 = its default, the cores)")
    parser.add_argument("--repeats", type=int, default=1, help="`tune` processes per seed, each in a fresh folder")
    parser.add_argument("--naive_repeats", type=int, default=1, help="naive loops per seed (0 = none)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    from selector.stages.clustering import CLUSTERERS
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed

    tuned: dict[int, list] = {seed: [] for seed in seeds}
    naive: dict[int, list] = {seed: [] for seed in seeds}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset
        if dataset == "digits-vectors":
            from sklearn.datasets import load_digits

            digits = load_digits()
            dataset = str(Path(tmp) / "digits.npz")
            np.savez(dataset, X=digits.data.astype(np.float32), y=digits.target)
        data = load_dataset(dataset)
        for seed in seeds:
            for repeat in range(args.repeats):
                folder = Path(tmp) / f"tune-{seed}-{repeat}"
                if args.encoder != "none":  # embeddings are not what is measured: computed before
                    os.environ["SELECTOR_CACHE_DIR"] = str(folder / "cache")
                    embed(data, args.encoder, progress=False)
                seconds, found = tune_process(dataset, args.encoder, args.n_trials, seed, args.workers, folder)
                tuned[seed].append((seconds, found))
                print(f"seed {seed}: tune run {repeat + 1}: {seconds:.1f} s, best {found['best']:.4f}", flush=True)
        vectors = embed(data, args.encoder, progress=False).vectors
        # numba compiles UMAP's functions on their first call: outside the naive loop's timing, as
        # `tune` finds them compiled on disk (selector.stages.compiled) after its first run on a machine.
        plain_reducer({"name": "umap", "n_components": 2, "n_neighbors": 5, "min_dist": 0.1}, 0) \
            .fit_transform(vectors[:200])
        for seed in seeds:
            for repeat in range(args.naive_repeats):
                naive[seed].append(naive_search(vectors, list(CLUSTERERS), args.n_trials, seed))
                print(f"seed {seed}: naive run {repeat + 1}: {naive[seed][-1][0]:.1f} s, best {naive[seed][-1][1]:.4f}",
                      flush=True)

    workers = args.workers or min(os.cpu_count() or 1, args.n_trials)
    print(f"\n{args.dataset}/{args.encoder}, {args.n_trials} trials, {vectors.shape[0]}×{vectors.shape[1]}, seeds {args.seeds}")
    print("| seed | naive loop s | its best silhouette | `tune` s (median) | its best silhouette | speed-up | best vs naive |")
    print("|---|---|---|---|---|---|---|")
    speedups, gaps = [], []
    for seed in seeds:
        tune_s = statistics.median(s for s, _ in tuned[seed])
        tune_best = statistics.median(found["best"] for _, found in tuned[seed])
        if naive[seed]:
            naive_s = statistics.median(s for s, _ in naive[seed])
            naive_best = statistics.median(b for _, b in naive[seed])
            speedups.append(naive_s / tune_s)
            gaps.append(tune_best - naive_best)
            print(f"| {seed} | {naive_s:.1f} | {naive_best:.4f} | {tune_s:.1f} | {tune_best:.4f} | {speedups[-1]:.1f}× "
                  f"| {gaps[-1]:+.4f} |")
        else:
            print(f"| {seed} | — | — | {tune_s:.1f} | {tune_best:.4f} | — | — |")
    if speedups:
        print(f"| median | | | | | {statistics.median(speedups):.1f}× | {statistics.median(gaps):+.4f} |")

    runs = [run for seed in seeds for run in tuned[seed]]
    median_run = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    print(f"\n`tune`: a whole process, workers={workers}, MLflow, report; {len(runs)} runs, wall "
          f"{statistics.median(s for s, _ in runs):.1f} s median ({min(s for s, _ in runs):.1f}–"
          f"{max(s for s, _ in runs):.1f}); the median run fitted {median_run[1]['fits']} reductions.")
    print("where the median `tune` run's time went (seconds):")
    width = max(len(name) for name in median_run[1]["where"])
    for name, value in median_run[1]["where"].items():
        print(f"  {name:<{width}} {value:6.1f}")


if __name__ == "__main__":
    report.run(main, "bench_search: " + __doc__.strip().splitlines()[0])
