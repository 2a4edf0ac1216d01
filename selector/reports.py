"""What people look at: the trials table and the study's plots, logged as artifacts of the parent run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

logger = logging.getLogger(__name__)

MAP_SPACE = {"name": "umap", "scaling": "none", "n_components": 2, "n_neighbors": 30, "min_dist": 0.1,
             "metric": "euclidean"}


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective, parameters and every logged score."""
    rows = []
    for trial in study.trials:
        rows.append({"number": trial.number, "state": trial.state.name, "silhouette_umap": trial.value,
                     **trial.params, **trial.user_attrs,
                     "duration_s": trial.duration.total_seconds() if trial.duration else None})
    return pd.DataFrame(rows)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.8), dpi=100)


def plot_silhouette_vs_ami(table: pd.DataFrame, rho: float | None, path: Path) -> None:
    fig, ax = _figure()
    done = table[table["state"] == "COMPLETE"]
    ax.scatter(done["silhouette_umap"], done["ami"], s=18, alpha=0.7)
    best = done.loc[done["silhouette_umap"].idxmax()]
    ax.scatter([best["silhouette_umap"]], [best["ami"]], s=80, marker="*", color="crimson", label="chosen (label-free)")
    ax.set_xlabel("silhouette in UMAP space (objective)")
    ax.set_ylabel("AMI against true labels (validation only)")
    ax.set_title(f"Spearman ρ = {rho:.3f}" if rho is not None else "silhouette vs AMI")
    ax.legend(loc="lower right")
    fig.savefig(path, bbox_inches="tight")


def plot_history(table: pd.DataFrame, path: Path) -> None:
    fig, ax = _figure()
    done = table[table["state"] == "COMPLETE"].sort_values("number")
    ax.scatter(done["number"], done["silhouette_umap"], s=14, alpha=0.6, label="trial")
    ax.plot(done["number"], done["silhouette_umap"].cummax(), color="crimson", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("silhouette_umap")
    ax.set_title("optimisation history")
    ax.legend(loc="lower right")
    fig.savefig(path, bbox_inches="tight")


def plot_importances(study: optuna.Study, path: Path) -> bool:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "few trials per regime" is expected early in a study
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few trials, or one value everywhere
        logger.info("no parameter importances: %s", exc)
        return False
    if not importances:
        return False
    fig, ax = _figure()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (Optuna's default evaluator)")
    ax.set_title("parameter importances for silhouette_umap")
    fig.savefig(path, bbox_inches="tight")
    return True


def plot_cluster_map(points: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
    fig, ax = _figure()
    noise = labels == -1
    ax.scatter(points[noise, 0], points[noise, 1], s=4, c="lightgrey", label="noise")
    ax.scatter(points[~noise, 0], points[~noise, 1], s=4, c=labels[~noise], cmap="tab20")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    fig.savefig(path, bbox_inches="tight")


def log_study_report(study: optuna.Study, ctx, embedded, run_id: str) -> None:
    """Trials CSV and the plots, as artifacts of the study's parent run."""
    import matplotlib.pyplot as plt
    import mlflow

    from selector.search import fit_pipeline, summarize

    client = mlflow.tracking.MlflowClient()
    table = trials_table(study)
    metrics, _ = summarize(study)
    best = study.best_trial
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        table.to_csv(out / "trials.csv", index=False)
        plot_history(table, out / "optimization_history.png")
        plot_importances(study, out / "param_importances.png")
        if "ami" in table.columns:
            plot_silhouette_vs_ami(table, metrics.get("spearman_silhouette_ami"), out / "silhouette_vs_ami.png")
        _, model = fit_pipeline(ctx, best.params)
        points = ctx.cache.reduce(ctx.vectors, MAP_SPACE, ctx.seed)
        plot_cluster_map(points, model.labels_, out / "cluster_map.png",
                         f"best trial {best.number}: {best.params['clusterer']}, {metrics.get('best_silhouette_umap', 0):.3f}")
        plt.close("all")
        client.log_artifacts(run_id, str(out))


def terminal_summary(study_name: str, metrics: dict, parent_run_id: str) -> str:
    import mlflow

    from selector.tracking import mask_url

    shown = ["best_silhouette_umap", "best_ami", "oracle_ami", "selection_regret", "spearman_silhouette_ami",
             "n_trials_complete", "n_trials_failed"]
    lines = [f"study {study_name!r}"]
    lines += [f"  {name:<24} {metrics[name]:.4f}" if isinstance(metrics[name], float) else
              f"  {name:<24} {metrics[name]}" for name in shown if name in metrics]
    lines.append(f"  parent run {parent_run_id} in {mask_url(mlflow.get_tracking_uri())}")
    return "\n".join(lines)
