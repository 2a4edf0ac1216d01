"""What people look at: the trials table and the study's plots, logged as artifacts of the parent run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from selector import retry
from selector.stages.objective import LEGACY_OBJECTIVE

logger = logging.getLogger(__name__)

MAP_SPACE = {"name": "umap", "scaling": "none", "n_components": 2, "n_neighbors": 30, "min_dist": 0.1,
             "metric": "euclidean"}


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective, parameters and every logged score."""
    rows = []
    for trial in study.trials:
        rows.append({"number": trial.number, "state": trial.state.name, "objective_value": trial.value,
                     **trial.params, **trial.user_attrs,
                     "duration_s": trial.duration.total_seconds() if trial.duration else None})
    return pd.DataFrame(rows)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.8), dpi=100)


def plot_objective_vs_ami(table: pd.DataFrame, rho: float | None, objective: str, path: Path) -> None:
    fig, ax = _figure()
    done = table[table["state"] == "COMPLETE"]
    ax.scatter(done["objective_value"], done["ami"], s=18, alpha=0.7)
    best = done.loc[done["objective_value"].idxmax()]
    ax.scatter([best["objective_value"]], [best["ami"]], s=80, marker="*", color="crimson", label="chosen (label-free)")
    ax.set_xlabel(f"{objective} (objective)")
    ax.set_ylabel("AMI against true labels (validation only)")
    ax.set_title(f"Spearman ρ = {rho:.3f}" if rho is not None else f"{objective} vs AMI")
    ax.legend(loc="lower right")
    fig.savefig(path, bbox_inches="tight")


def plot_history(table: pd.DataFrame, objective: str, path: Path) -> None:
    fig, ax = _figure()
    done = table[table["state"] == "COMPLETE"].sort_values("number")
    ax.scatter(done["number"], done["objective_value"], s=14, alpha=0.6, label="trial")
    ax.plot(done["number"], done["objective_value"].cummax(), color="crimson", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title("optimisation history")
    ax.legend(loc="lower right")
    fig.savefig(path, bbox_inches="tight")


def plot_importances(study: optuna.Study, objective: str, path: Path) -> bool:
    from selector.quiet import known_noise

    try:
        # Optuna's notices about few trials per parameter are expected early in a study.
        with known_noise("", category=UserWarning), known_noise("", category=optuna.exceptions.ExperimentalWarning):
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few trials, or one value everywhere
        logger.debug("no parameter importances: %s", exc)
        return False
    if not importances:
        return False
    fig, ax = _figure()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (Optuna's default evaluator)")
    ax.set_title(f"parameter importances for {objective}")
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


def map_points(cache, vectors: np.ndarray, seed: int) -> np.ndarray:
    """The report's 2-D map of every point, through the study's reduction cache (it does not depend on
    the trials: a worker with nothing else to do computes it early)."""
    return cache.reduce(vectors, MAP_SPACE, seed)


def prepare_report(ctx) -> None:
    """What the report will need that does not depend on the trials: matplotlib and the 2-D map. A
    worker waiting for the others' last trials calls it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    map_points(ctx.cache, ctx.vectors, ctx.seed)


def write_study_report(out: Path, study: optuna.Study, metrics: dict, labels: np.ndarray, ctx, embedded, data=None,
                       work: dict | None = None, others: dict | None = None) -> None:
    """Trials CSV, ``alternatives.csv``, the plots and ``report.html`` (self-contained) in the folder ``out``.

    ``metrics`` is the study's summary and ``labels`` its best trial's clustering; ``others`` the
    clusterings of its alternatives (trial number → labels); ``ctx`` (the study's ``SearchContext``)
    gives the objective and the cache the 2-D map is reduced through.
    """
    import matplotlib.pyplot as plt

    from selector.study import alternatives as alt

    out.mkdir(parents=True, exist_ok=True)
    table = trials_table(study)
    best = alt.chosen_trial(study)
    objective = ctx.objective.name
    paper = {k: v for k, v in metrics.items() if k.startswith("paper_recipe")}
    table.to_csv(out / "trials.csv", index=False)
    found = alt.alternatives(study)
    alt.table(found).to_csv(out / ALTERNATIVES_FILE, index=False)
    plot_history(table, objective, out / "optimization_history.png")
    has_importances = plot_importances(study, objective, out / "param_importances.png")
    if "ami" in table.columns:
        plot_objective_vs_ami(table, metrics.get("spearman_objective_ami"), objective, out / "objective_vs_ami.png")
    points = map_points(ctx.cache, ctx.vectors, ctx.seed)
    plot_cluster_map(points, labels, out / "cluster_map.png",
                     f"chosen trial {best.number}: {best.params['clusterer']}, {objective} {best.value:.3f}")
    plt.close("all")
    page = study_page(study, table, metrics, labels, out, embedded, data, work or {}, paper, has_importances,
                      objective, alternatives_section(found, labels, others or {}, embedded, data))
    (out / "report.html").write_text(page, encoding="utf-8")


CLUSTERS_FILE = "clusters.csv"
ALTERNATIVES_FILE = "alternatives.csv"
ALTERNATIVE_CLUSTERS = 8  # the largest clusters shown per alternative
ALTERNATIVE_IMAGES = 4


def clusters_table(ids, clusters: np.ndarray, confidence: np.ndarray, truth: np.ndarray | None = None) -> pd.DataFrame:
    """Which point went to which cluster: ``id`` (a file's path under the data set, or its row),
    ``cluster`` (−1 = noise), ``confidence`` in [0, 1], and ``label`` when the data set has labels."""
    table = pd.DataFrame({"id": np.asarray(ids).astype(str), "cluster": np.asarray(clusters, dtype=np.int64),
                          "confidence": np.round(np.asarray(confidence, dtype=np.float64), 6)})
    if truth is not None:
        table["label"] = np.asarray(truth)
    return table


def log_clusters(table: pd.DataFrame, run_id: str) -> None:
    """``clusters.csv`` as an artifact of ``run_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / CLUSTERS_FILE, index=False)
        retry.client().log_artifact(run_id, str(Path(tmp) / CLUSTERS_FILE))


GALLERY_CLUSTERS = 24  # the largest clusters shown (plus noise)
GALLERY_IMAGES = 8  # images per cluster


def gallery_members(labels: np.ndarray, embedded, data, seed: int = 0, clusters: int = GALLERY_CLUSTERS,
                    images: int = GALLERY_IMAGES) -> list:
    """A seeded sample of the largest ``clusters`` clusters' images (``images`` each, noise last):
    (cluster, size, [(id, image), …]), largest first."""
    position = {item_id: i for i, item_id in enumerate(data.ids)}
    rng = np.random.default_rng(seed)
    found, sizes = np.unique(labels, return_counts=True)
    order = [c for c in found[np.argsort(-sizes, kind="stable")] if c != -1][:clusters]
    if -1 in found:
        order.append(-1)
    members = []
    for cluster in order:
        where = np.flatnonzero(labels == cluster)
        picks = np.sort(rng.choice(where, size=min(images, len(where)), replace=False))
        members.append((int(cluster), len(where),
                        [(str(embedded.ids[i]), data.images[position[embedded.ids[i]]]) for i in picks]))
    return members


def alternatives_section(found: list, labels: np.ndarray, others: dict, embedded, data) -> str:
    """The choice and the best trial of each other resolution side by side: score, gap, agreement with
    the choice, AMI when labels exist, and a gallery of each one's largest clusters."""
    from sklearn.metrics import adjusted_rand_score

    from selector.study import report_html as h

    if len(found) < 2:
        return h.section("alternatives", "Alternatives", "<p>No trial reached another resolution (a number of "
                         f"clusters {1.5:g}× or more from the choice's): the choice stands alone.</p>")
    columns = []
    for rank, alternative in enumerate(found):
        trial = alternative.trial
        own = labels if rank == 0 else others.get(trial.number)
        facts = {"k": alternative.k, "clusterer": trial.params.get("clusterer"), "objective": trial.value}
        if alternative.gap >= 0:
            facts["below the choice"] = f"{100 * alternative.gap:.1f} %"
        else:
            facts["above the choice"] = f"{-100 * alternative.gap:.1f} %, but its clusters are not all apart"
        if own is not None and rank:
            facts["agreement with the choice (ARI)"] = float(adjusted_rand_score(labels, own))
        if "ami" in trial.user_attrs:
            facts["AMI (validation only)"] = trial.user_attrs["ami"]
        body = h.pairs(facts)
        if own is not None and data is not None and data.kind == "images":
            body += h.gallery(gallery_members(own, embedded, data, clusters=ALTERNATIVE_CLUSTERS,
                                              images=ALTERNATIVE_IMAGES))
        title = f"trial {trial.number}" + (" — the choice" if rank == 0 else "")
        columns.append(f'<div class="alternative" data-trial="{trial.number}"><h3>{h.escape(title)}</h3>{body}</div>')
    note = ("<p>The best trial of each distinct resolution (numbers of clusters 1.5× apart or more), the choice "
            "first: the best trial, unless none of its clusters is apart from its nearest neighbour (a density "
            "dip between them) and another within 10 % of it has every cluster apart. "
            "<code>clusters.csv</code> is the choice's; register another with <code>register -P trial=N</code>. "
            f"Listed in <code>{ALTERNATIVES_FILE}</code>.</p>")
    return h.section("alternatives", "Alternatives a person might pick", note +
                     f'<div class="alternatives">{"".join(columns)}</div>')


def study_page(study, table: pd.DataFrame, metrics: dict, labels: np.ndarray, out: Path, embedded, data,
               work: dict, paper: dict, has_importances: bool, objective: str = LEGACY_OBJECTIVE,
               alternatives: str = "") -> str:
    from selector.study import report_html as h
    from selector.study.alternatives import chosen_trial

    best = chosen_trial(study)
    scores = {k: best.user_attrs.get(k) for k in ("silhouette_umap", "n_clusters", "noise_fraction", "ami", "ari",
                                                  "nmi") if best.user_attrs.get(k) is not None}
    settled = {} if best.number == study.best_trial.number else {
        "chosen by": f"the dip test: trial {study.best_trial.number} scores higher, but none of its clusters is apart"}
    summary = {f"{objective} (objective)": best.value, **settled, **scores, **best.params,
               **{k: v for k, v in metrics.items() if k != "best_objective_value" and not k.startswith("paper_recipe")}}
    sections = [h.section("best", f"Best pipeline (trial {best.number}, chosen without labels)", h.pairs(summary)),
                h.section("history", "Optimisation history", h.plot(out / "optimization_history.png", "history"))]
    sections.append(h.section("importances", "Parameter importances",
                              h.plot(out / "param_importances.png", "importances") if has_importances else
                              '<p class="note">Too few complete trials to estimate importances.</p>'))
    if "ami" in table.columns:
        sections.append(h.section("objective-vs-ami", f"{objective} (objective) against AMI (validation only)",
                                  h.plot(out / "objective_vs_ami.png", f"{objective} vs AMI")
                                  + f"<p>Spearman rank correlation over complete trials: "
                                    f"{h.fmt(metrics.get('spearman_objective_ami'))} ({objective}), "
                                    f"{h.fmt(metrics.get('spearman_silhouette_ami'))} (silhouette_umap).</p>"))
    sections.append(h.section("cluster-map", "The best clustering on a 2-D UMAP map",
                              h.plot(out / "cluster_map.png", "cluster map")))
    clusters, sizes = np.unique(labels, return_counts=True)
    size_table = pd.DataFrame({"cluster": clusters, "points": sizes, "share": sizes / len(labels)})
    size_table = size_table.sort_values("points", ascending=False)
    sections.append(h.section("clusters", "Cluster sizes",
                              f"<p>{int((clusters != -1).sum())} clusters; outlier (noise) fraction "
                              f"{h.fmt(float((labels == -1).mean()))}. Every point's cluster and confidence: "
                              f"<code>{CLUSTERS_FILE}</code>, beside this report.</p>" + h.table(size_table)))
    if data is not None and data.kind == "images":
        sections.append(h.section("gallery", "Images per cluster (a seeded sample)",
                                  h.gallery(gallery_members(labels, embedded, data))))
    if alternatives:
        sections.append(alternatives)
    if paper:
        comparison = pd.DataFrame([
            {"pipeline": "label-free winner (this study)", "uses labels": "no", "k": scores.get("n_clusters"),
             objective: best.value, "silhouette_umap": scores.get("silhouette_umap"), "AMI": scores.get("ami")},
            {"pipeline": "paper recipe: UMAP 50d/30nn/0 + Ward, k = true classes", "uses labels": "yes (k)",
             "k": paper["paper_recipe_k"], objective: paper.get("paper_recipe_objective_value"),
             "silhouette_umap": paper["paper_recipe_silhouette_umap"], "AMI": paper["paper_recipe_ami"]}])
        sections.append(h.section("paper-recipe", "Comparison with the seed paper's recipe", h.table(comparison)))
    done = table[table["state"] == "COMPLETE"]
    stages = {f"{name} (sum over {len(done)} trials)": float(done[name].sum())
              for name in ("reduce_seconds", "cluster_seconds", "score_seconds") if name in done.columns}
    sections.append(h.section("timings", "Where the time went (seconds)", h.pairs({**work, **stages})))
    return h.page(f"Study {study.study_name}", sections,
                  f"data set {embedded.dataset}, encoder {embedded.encoder.get('name')}, {len(labels)} points")


def select_page(board: pd.DataFrame, dataset: str, rule: str = "cross_objective_value") -> str:
    """The encoder leaderboard of one ``select`` run, the label-free winner marked."""
    from selector.study import report_html as h

    # The objective is one for the whole board: said once below the table, not in a column.
    shown = board.drop(columns=[c for c in ("study_run_id", "objective") if c in board.columns])
    if shown["best_ami"].isna().all():
        shown = shown.drop(columns=[c for c in shown.columns if "ami" in c or "regret" in c])
    body = h.table(shown, highlight=board["chosen"])
    if "best_ami" in shown.columns:
        by_ami = board.loc[board["best_ami"].idxmax(), "encoder"]
        winner = board.loc[board["chosen"], "encoder"].iloc[0]
        verdict = "matched" if by_ami == winner else "did not match"
        body += (f"<p id='label-check'>The label-free choice ({h.escape(winner)}) {verdict} the encoder with the "
                 f"highest AMI ({h.escape(by_ami)}).</p>")
    objective = board["objective"].iloc[0] if "objective" in board.columns else LEGACY_OBJECTIVE
    how = (f"the mean {h.escape(objective)} of each study's clustering over every study's evaluation space "
           "(cross_objective_value)" if rule == "cross_objective_value" else
           f"the best {h.escape(objective)} in each study's own space")
    body += (f'<p class="note">Chosen by {how}: label-free; labels (when present) are only reported.</p>')
    return h.page(f"Encoder selection on {dataset}", [h.section("leaderboard", "Leaderboard", body)])


def ui_address(experiment_id: str, run_id: str) -> str:
    """Where to look at a run: the server's page, or the ``mlflow ui`` command for a local store."""
    import mlflow

    from selector.study.tracking import mask_url

    uri = mlflow.get_tracking_uri()
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"mlflow ui --backend-store-uri {mask_url(uri)}  →  http://127.0.0.1:5000/{page}"


def terminal_summary(study_name: str, metrics: dict, parent_run_id: str, experiment_id: str = "0",
                     objective: str = "", study: optuna.Study | None = None) -> str:
    shown = ["best_objective_value", "best_silhouette_umap", "choice_margin", "best_ami", "oracle_ami",
             "selection_regret", "spearman_objective_ami", "paper_recipe_ami", "n_trials_complete", "n_trials_failed",
             "n_trials_declined"]
    lines = [f"study {study_name!r}" + (f" (objective {objective})" if objective else "")]
    lines += [f"  {name:<24} {metrics[name]:.4f}" if isinstance(metrics[name], float) else
              f"  {name:<24} {metrics[name]}" for name in shown if name in metrics]
    lines += close_call(study) if study is not None else []
    lines.append(f"  parent run {parent_run_id}: {ui_address(experiment_id, parent_run_id)}")
    return "\n".join(lines)


def close_call(study: optuna.Study) -> list[str]:
    """A line for each alternative that scores within ``CLOSE`` of the choice: a person may prefer it."""
    from selector.study.alternatives import CLOSE, alternatives

    found = alternatives(study)
    if not found:
        return []
    lines = []
    chosen = found[0]
    for alt in found[1:]:
        if alt.gap <= CLOSE:
            choice = f"the choice (trial {chosen.trial.number}, k={chosen.k})"
            where = f"{100 * alt.gap:.1f} % below {choice}" if alt.gap >= 0 else \
                (f"{-100 * alt.gap:.1f} % above {choice}: the choice's clusters all show a density dip where "
                 "they meet, this one's do not")
            lines.append(f"  close call: trial {alt.trial.number} (k={alt.k}, {alt.trial.params.get('clusterer')}) "
                         f"scores {alt.trial.value:.4f}, {where}; alternatives.csv lists it, "
                         f"`register -P trial={alt.trial.number}` registers it")
    return lines
