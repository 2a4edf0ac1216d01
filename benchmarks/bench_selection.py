"""Which label-free objective chooses well? Measured on the labelled suite (``benchmarks/suite.py``).

Two phases, both over every (data set, encoder, seed) of the suite:

``--phase paired``: one pool of trials per (set, encoder, seed) — the study's three starting points and
then Optuna's seeded random sampler over the same search space, so no objective steers it — and every
registered objective scores every trial. Each objective chooses its best trial from the same pool:
a paired comparison. Per objective and half: mean and worst regret (oracle AMI − chosen AMI), collapses
(chosen AMI < half the oracle), the chosen k against the true k, and the share of the pool's compute
the objective costs. Pools are kept as JSON under ``--out``, so a second call only re-scores.

``--phase studies``: whole ``tune`` studies (TPE, MLflow in a throw-away store) with ``--objective`` as
what the sampler follows; per (set, encoder) the median over seeds of the chosen AMI, regret, chosen
k, the paper recipe's AMI given the true k, and the objective's share of the study's wall time. Then
``select``'s rule — the encoder whose study reached the highest objective value — against the encoder
with the highest oracle AMI.

    python benchmarks/bench_selection.py --phase paired --seeds 0,1,2 --jobs 2
    python benchmarks/bench_selection.py --phase studies --objective modularity --seeds 0,1,2 --jobs 2

Criteria and their parameters were decided on DEV with HELD_OUT reported apart; HELD_OUT then exposed a
failure and was used to revise the default, so FRESH — built afterwards and run once — is the half
that decided nothing (``suite.py`` tells the order).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

import candidates  # noqa: E402
import real  # noqa: E402
import report  # noqa: E402
import suite  # noqa: E402
from selector.stages.encoders import get_encoder  # noqa: E402

ENCODERS = ("raw", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
ALL_SETS = tuple(suite.BUILDERS) + suite.POINTS + tuple(real.SETS)
GROUPS = {"generated": tuple(suite.BUILDERS), "real": tuple(real.SETS), "real-dev": real.REAL_DEV,
          "real-held-out": real.REAL_HELD_OUT, "real-fresh": real.REAL_FRESH, "real-few": real.REAL_FEW,
          "real-small": real.REAL_SMALL, "real-new": real.REAL_NEW,
          "real-faces94": real.REAL_FACES94, "dev": suite.DEV,
          "held-out": suite.HELD_OUT, "fresh": suite.FRESH, "points": suite.POINTS,
          "points-dev": suite.POINTS_DEV, "points-held-out": suite.POINTS_HELD_OUT}


candidates.register()

# A case whose best trial of all has an AMI below this has no classes to find (raw pixels of shapes in
# random colours): "chosen < half the oracle" there is noise, so it is counted apart, not as a collapse.
HOPELESS = 0.1


def combos(sets: list[str], encoders: list[str]) -> list[tuple[str, str]]:
    """(set, encoder) pairs: image sets with every encoder, vector sets with ``none``."""
    out = []
    for name in sets:
        kind = "vectors" if name in suite.VECTOR_SETS else "images"
        out += [(name, "none")] if kind == "vectors" else [(name, e) for e in encoders]
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub table (pandas' ``to_markdown`` needs ``tabulate``, which selector does not install)."""
    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if not np.isfinite(value) else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def half(name: str) -> str:
    if name in real.SETS:
        return ("real-dev" if name in real.REAL_DEV else "real-held-out" if name in real.REAL_HELD_OUT
                else "real-few" if name in real.REAL_FEW else "real-small" if name in real.REAL_SMALL
                else "real-new" if name in real.REAL_NEW else "real-faces94" if name in real.REAL_FACES94
                else "real-fresh")
    if name in suite.POINTS:
        return "points-dev" if name in suite.POINTS_DEV else "points-held-out"
    return "dev" if name in suite.DEV else "held-out" if name in suite.HELD_OUT else "fresh"


def build(name: str):
    return real.build(name) if name in real.SETS else suite.build(name)


def parse_sets(text: str) -> list[str]:
    """Set names and group names (``real``, ``real-dev``, ``generated``, ``dev``, …); real sets whose
    folders are missing are dropped, each with a line saying which repository to fetch."""
    names: list[str] = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        for name in GROUPS.get(token, (token,)):
            if name not in ALL_SETS:
                raise SystemExit(f"unknown set {name!r}; valid: {', '.join(ALL_SETS)} or {', '.join(GROUPS)}")
            if name not in names:
                names.append(name)
    found, messages = real.available([n for n in names if n in real.SETS])
    for message in messages:
        print(message, file=sys.stderr)
    return [n for n in names if n not in real.SETS or n in found]


# --------------------------------------------------------------------------- phase 1: paired pools
def search_context(name: str, encoder: str, seed: int):
    """The set's cached embedding and a study's search context over it (every clusterer, no labels, an
    in-memory reduction cache): what a pool's trials and a study's refitted alternatives are fitted in."""
    from selector.stages.clustering import CLUSTERERS
    from selector.stages.embedding import embed
    from selector.stages.reduction import ReductionCache
    from selector.study import trials as search_trials

    embedded = embed(build(name), encoder, progress=False)
    return embedded, search_trials.SearchContext(vectors=embedded.vectors, labels=None, clusterers=list(CLUSTERERS),
                                                 seed=seed, cache=ReductionCache(None, embedded.key))


def pool(task: tuple[str, str, int, int, str]) -> dict:
    """Trials of one (set, encoder, seed), each scored by every objective; cached as JSON."""
    import warnings

    import optuna

    from selector.study import trials as search_trials
    from selector.stages.clustering import Declined, suggest_clusterer
    from selector.stages.objective import OBJECTIVES, validation_metrics
    from selector.stages.reduction import suggest_reducer

    name, encoder, seed, n_trials, out, objectives = task
    objectives = objectives or list(OBJECTIVES)
    path = Path(out) / f"pool-{name}-{encoder}-{seed}-{n_trials}.json"
    stored = json.loads(path.read_text()) if path.is_file() else None
    if stored and stored["trials"] and all("labels" in t and set(objectives) <= set(t["scores"])
                                           for t in stored["trials"]):
        return stored
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    embedded, ctx = search_context(name, encoder, seed)
    X, y = embedded.vectors, embedded.labels
    names = ctx.clusterers
    start = time.perf_counter()
    ctx.eval_space  # built here, so that eval_seconds measures it
    eval_seconds = time.perf_counter() - start

    def score(record: dict, labels: np.ndarray) -> dict:
        record["labels"] = labels.astype(int).tolist()
        for objective in objectives:
            if objective not in record["scores"]:
                begin = time.perf_counter()
                record["scores"][objective] = OBJECTIVES[objective].score(ctx.eval_space, labels, seed).value
                record["seconds"][objective] = time.perf_counter() - begin
        return record

    if stored:  # an earlier run's pool: the same trials, re-scored (pipelines refitted only when labels are missing)
        for record in stored["trials"]:
            labels = np.asarray(record["labels"]) if "labels" in record else \
                search_trials.fit_pipeline(ctx, record["params"])[1].labels_
            score(record, labels)
        path.write_text(json.dumps(stored))
        return stored

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    for point in search_trials.starting_points(names, ctx.eval_space.params):
        study.enqueue_trial(point)
    trials = []

    def run(trial):
        suggest_reducer(trial, len(X), X.shape[1])
        suggest_clusterer(trial, len(X), names)
        timings: dict = {}
        try:
            _, model = search_trials.fit_pipeline(ctx, trial.params, timings)
        except Declined:
            raise optuna.TrialPruned()
        record = {"params": trial.params, "fit_seconds": timings["reduce_seconds"] + timings["cluster_seconds"],
                  "k": int(len(set(model.labels_.tolist()) - {-1})), "noise": float((model.labels_ == -1).mean()),
                  "ami": validation_metrics(y, model.labels_)["ami"], "scores": {}, "seconds": {}}
        trials.append(score(record, model.labels_))
        return record["scores"]["silhouette"]

    study.optimize(run, n_trials=n_trials, catch=(Exception,))
    result = {"set": name, "encoder": encoder, "seed": seed, "true_k": int(len(np.unique(y))),
              "eval_seconds": eval_seconds, "trials": trials,
              "paper_recipe_ami": paper_ami(ctx.eval_space, y, seed)}
    path.write_text(json.dumps(result))
    return result


def paper_ami(space, y, seed: int) -> float:
    from selector.stages.objective import get_objective, paper_recipe

    return paper_recipe(space, y, get_objective("silhouette"), seed).get("paper_recipe_ami", float("nan"))


def choose(trials: list[dict], objective: str) -> dict:
    values = [t["scores"][objective] for t in trials]
    values = [v if np.isfinite(v) else -np.inf for v in values]
    return trials[int(np.argmax(values))]


def paired_rows(pools: list[dict], objectives: list[str]) -> pd.DataFrame:
    rows = []
    for p in pools:
        if not p["trials"]:
            continue
        oracle = max(t["ami"] for t in p["trials"])
        compute = p["eval_seconds"] + sum(t["fit_seconds"] for t in p["trials"])
        for objective in objectives:
            chosen = choose(p["trials"], objective)
            cost = sum(t["seconds"][objective] for t in p["trials"])
            rows.append({"half": half(p["set"]), "set": p["set"], "encoder": p["encoder"], "seed": p["seed"],
                         "objective": objective, "chosen_ami": chosen["ami"], "oracle_ami": oracle,
                         "regret": oracle - chosen["ami"], "chosen_k": chosen["k"], "true_k": p["true_k"],
                         "paper_recipe_ami": p["paper_recipe_ami"], "cost_share": cost / (compute + cost)})
    return pd.DataFrame(rows)


def case_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, encoder): oracle AMI, true k, and per objective "chosen AMI (chosen k)",
    medians over seeds."""
    medians = rows.groupby(["half", "set", "encoder", "objective"]).median(numeric_only=True).reset_index()
    medians["cell"] = [f"{a:.2f} ({k:g})" for a, k in zip(medians["chosen_ami"], medians["chosen_k"])]
    table = medians.pivot(index=["half", "set", "encoder"], columns="objective", values="cell")
    facts = medians.groupby(["half", "set", "encoder"])[["oracle_ami", "true_k", "paper_recipe_ami"]].first()
    return facts.join(table).reset_index().sort_values(["half", "set", "encoder"])


def paired_encoder_choice(pools: list[dict], objectives: list[str]) -> pd.DataFrame:
    """``select``'s rule on the pools, per objective: in each (image set, seed), the encoder whose chosen
    trial has the highest objective value, against the encoder with the highest oracle AMI — counted
    where that encoder leads every other by at least 0.05."""
    rows = []
    by_case: dict = {}
    for p in pools:
        if get_encoder(p["encoder"]).takes == "images" and p["trials"]:  # vector sets have one encoder
            by_case.setdefault((p["set"], p["seed"]), []).append(p)
    for objective in objectives:
        for (name, seed), group in by_case.items():
            if len(group) < 2:
                continue
            chosen = [(choose(p["trials"], objective), p) for p in group]
            picked = max(chosen, key=lambda c: c[0]["scores"][objective])
            oracles = sorted(((max(t["ami"] for t in p["trials"]), p["encoder"]) for p in group), reverse=True)
            rows.append({"half": half(name), "objective": objective, "set": name, "seed": seed,
                         "picked": picked[1]["encoder"], "oracle_encoder": oracles[0][1],
                         "clear_lead": oracles[0][0] - oracles[1][0] >= 0.05,
                         "right": picked[1]["encoder"] == oracles[0][1], "picked_ami": picked[0]["ami"],
                         "best_chosen_ami": max(c[0]["ami"] for c in chosen)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame({"note": ["one encoder per set: nothing to choose between"]})
    clear = frame[frame["clear_lead"]]
    table = frame.groupby(["half", "objective"]).agg(cases=("right", "size"), right=("right", "sum"),
                                                      ami_lost=("picked_ami", "mean"))
    table["clear_lead_cases"] = clear.groupby(["half", "objective"])["right"].size()
    table["clear_lead_right"] = clear.groupby(["half", "objective"])["right"].sum()
    table["ami_lost"] = (frame["best_chosen_ami"] - frame["picked_ami"]).groupby(
        [frame["half"], frame["objective"]]).mean()
    return table.fillna(0).reset_index()


FACTORS = ("modularity", "probe_information", "silhouette", "stability")  # stability: where the pools have it
EXPONENTS = (0.0, 0.25, 0.5, 1.0)


def product_grid(pools: list[dict]) -> pd.DataFrame:
    """Every product modularity^a × probe_information^b × silhouette^c (× stability^d, where every pool
    has it) — negative factors count as 0, a degenerate trial stays −1 — as a chooser on the same pools:
    mean regret and k2 runs per half. Computed from the stored factor scores: it costs nothing more."""
    import itertools

    pools = [p for p in pools if p["trials"]]
    factors_here = [f for f in FACTORS if all(f in t["scores"] for p in pools for t in p["trials"])]
    cases = []
    for p in pools:
        factors = np.array([[t["scores"][f] for f in factors_here] for t in p["trials"]], dtype=float)
        degenerate = (factors[:, 0] <= -1) | (factors[:, 2] <= -1)
        cases.append((p, np.clip(factors, 0, None), degenerate, np.array([t["ami"] for t in p["trials"]]),
                      np.array([t["k"] for t in p["trials"]])))
    rows = []
    for exponents in itertools.product(EXPONENTS, repeat=len(factors_here)):
        if not any(exponents):
            continue
        picks = []
        for p, factors, degenerate, ami, k in cases:
            value = np.where(degenerate, -1.0, np.prod(factors ** np.array(exponents), axis=1))
            best = int(np.argmax(value))
            picks.append({"half": half(p["set"]), "set": p["set"], "encoder": p["encoder"], "oracle": ami.max(),
                          "regret": ami.max() - ami[best], "k2": k[best] == 2 and p["true_k"] >= 6})
        frame = pd.DataFrame(picks)
        per_case = frame.groupby(["half", "set", "encoder"]).agg(regret=("regret", "median"), oracle=("oracle", "median"),
                                                                 k2=("k2", "sum")).reset_index()
        per_case = per_case[per_case["oracle"] >= HOPELESS]
        row = {f"{name}^": e for name, e in zip(factors_here, exponents)}
        for name, group in per_case.groupby("half"):
            row[f"{name} regret"] = group["regret"].mean()
            row[f"{name} k2"] = int(group["k2"].sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    regrets = [c for c in table.columns if c.endswith("regret")]
    table["mean regret"] = table[regrets].mean(axis=1)
    return table.sort_values("mean regret").reset_index(drop=True)


def layer_choice(pools: list[dict], objective: str) -> pd.DataFrame:
    """Per (image set, seed) over its (encoder, layer) pairs: the pair ``select``'s rule picks (highest
    chosen objective value), the best pair (highest chosen AMI) and the best final-layer pair; the best
    pair's lead over the final layers and the pick's loss against the best pair."""
    from selector.stages.encoders import split_layer

    by_case: dict = {}
    for p in pools:
        if p["trials"] and get_encoder(p["encoder"]).takes == "images" and p["encoder"] != "raw":
            by_case.setdefault((p["set"], p["seed"]), []).append((p["encoder"], choose(p["trials"], objective)))
    rows = []
    for (name, seed), pairs in sorted(by_case.items()):
        final = [(e, t) for e, t in pairs if split_layer(e)[1] == 0]
        if len(pairs) < 2 or not final:
            continue
        picked = max(pairs, key=lambda c: c[1]["scores"][objective])
        best = max(pairs, key=lambda c: c[1]["ami"])
        best_final = max(final, key=lambda c: c[1]["ami"])
        rows.append({"half": half(name), "set": name, "seed": seed, "pairs": len(pairs), "best_pair": best[0],
                     "best_ami": best[1]["ami"], "best_final_layer": best_final[0], "final_ami": best_final[1]["ami"],
                     "lead_over_final": best[1]["ami"] - best_final[1]["ami"], "picked": picked[0],
                     "picked_ami": picked[1]["ami"], "loss": best[1]["ami"] - picked[1]["ami"]})
    return pd.DataFrame(rows)


# Criteria that may break a close call between the choice and another resolution (``rerank``), and how
# close (the gap to the choice, as ``alternatives`` measures it) a resolution must be to be reconsidered.
RERANK_BY = ("stability", "probe_information", "silhouette", "subsplit", "modularity_silhouette_soft")
RERANK_WITHIN = (0.05, 0.1, 0.2)


def rerank_rows(pools: list[dict], objective: str) -> pd.DataFrame:
    """The study's alternatives (``selector.study.alternatives``: the best trial of each distinct
    resolution) computed on each pool by ``objective``; the choice, then the choice re-ranked: among the
    alternatives within ``within`` of it, the one a costlier criterion scores highest. Rows are shaped
    like ``paired_rows``' (the rule in ``objective``), so ``summary`` and ``case_table`` read them."""
    from types import SimpleNamespace

    import optuna

    from selector.study.alternatives import alternatives

    cases = []
    for p in pools:
        trials = p["trials"]
        frozen = [SimpleNamespace(number=i, state=optuna.trial.TrialState.COMPLETE, params=t["params"],
                                  value=t["scores"][objective] if np.isfinite(t["scores"][objective]) else None,
                                  user_attrs={"n_clusters": t["k"]}) for i, t in enumerate(trials)]
        found = [{"k": a.k, "gap": a.gap, "ami": trials[a.trial.number]["ami"],
                  "scores": trials[a.trial.number]["scores"]} for a in alternatives(frozen)]
        if found:
            cases.append((p, max(t["ami"] for t in trials), found))
    return _reranked(cases, objective)


def studies_rerank_rows(records: pd.DataFrame, objective: str) -> pd.DataFrame:
    """``rerank_rows`` on whole studies: the alternatives each study kept (``alternatives_scored``)."""
    usable = records[records["alternatives"].map(lambda v: isinstance(v, list) and len(v) > 0)] \
        if "alternatives" in records else records.iloc[:0]
    return _reranked([(r, r["oracle_ami"], r["alternatives"]) for _, r in usable.iterrows()], objective)


def _reranked(cases: list, objective: str) -> pd.DataFrame:
    """Per case (its facts, its oracle AMI, its alternatives as dicts with k, gap, ami and scores, the
    choice first): a row for the choice and one per (criterion, gap) rule."""
    rows = []
    for facts, oracle, found in cases:
        def row(rule: str, alt: dict) -> dict:
            return {"half": half(facts["set"]), "set": facts["set"], "encoder": facts["encoder"],
                    "seed": facts["seed"], "objective": rule, "chosen_ami": alt["ami"], "oracle_ami": oracle,
                    "regret": oracle - alt["ami"], "chosen_k": alt["k"], "true_k": facts["true_k"],
                    "paper_recipe_ami": facts["paper_recipe_ami"], "changed": alt is not found[0],
                    "close": len(found) > 1 and found[1]["gap"] <= max(RERANK_WITHIN), "cost_share": 0.0}

        rows.append(row(objective, found[0]))
        for within in RERANK_WITHIN:
            close = [a for a in found if a["gap"] <= within]
            for by in RERANK_BY:
                rows.append(row(f"{by} within {within:g}", max(close, key=lambda a: (a["scores"][by], -a["gap"]))))
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per objective and half, over (set, encoder) medians across seeds."""
    rows = rows.assign(k2=(rows["chosen_k"] == 2) & (rows["true_k"] >= 6))
    per_case = rows.groupby(["half", "objective", "set", "encoder"]).median(numeric_only=True).reset_index()
    per_case["k2"] = rows.groupby(["half", "objective", "set", "encoder"])["k2"].sum().to_numpy()
    per_case["hopeless"] = per_case["oracle_ami"] < HOPELESS
    per_case["collapse"] = (per_case["chosen_ami"] < 0.5 * per_case["oracle_ami"]) & ~per_case["hopeless"]
    per_case["k_ratio"] = per_case["chosen_k"] / per_case["true_k"]
    table = per_case.groupby(["half", "objective"]).agg(
        cases=("regret", "size"), hopeless=("hopeless", "sum"), mean_regret=("regret", "mean"),
        worst_regret=("regret", "max"), collapses=("collapse", "sum"), k2_runs=("k2", "sum"),
        mean_chosen_ami=("chosen_ami", "mean"),
        mean_paper_recipe_ami=("paper_recipe_ami", "mean"), median_k_ratio=("k_ratio", "median"),
        cost_share=("cost_share", "median"))
    return table.reset_index()


# --------------------------------------------------------------------------- phase 2: whole studies
def alternatives_scored(study_, name: str, encoder: str, seed: int, space_file: Path | None = None) -> list[dict]:
    """The study's alternatives (its choice first), refitted and scored by the ``RERANK_BY`` criteria in
    the study's evaluation space, with their AMI and labels: what ``--phase rerank`` reads from a whole
    study. ``space_file`` keeps the evaluation space (UMAP coordinates and fuzzy graph) for rules tried later."""
    from selector.stages.objective import OBJECTIVES, validation_metrics
    from selector.study import trials as search_trials
    from selector.study.alternatives import alternatives

    embedded, ctx = search_context(name, encoder, seed)
    if space_file is not None:
        np.savez_compressed(space_file, coords=ctx.eval_space.coords.astype(np.float32),
                            graph_points=np.arange(0) if ctx.eval_space.graph_points is None else ctx.eval_space.graph_points,
                            **{f"graph_{part}": getattr(ctx.eval_space.graph.tocsr(), part) for part in ("data", "indices", "indptr")})
    found = []
    for alt in alternatives(study_):
        labels = search_trials.fit_pipeline(ctx, alt.trial.params)[1].labels_
        found.append({"trial": alt.trial.number, "k": alt.k, "gap": alt.gap, "value": alt.trial.value,
                      "ami": validation_metrics(embedded.labels, labels)["ami"], "labels": labels.astype(int).tolist(),
                      "scores": {by: OBJECTIVES[by].score(ctx.eval_space, labels, seed).value for by in RERANK_BY}})
    return found


def stored_space(space_file: Path, name: str, encoder: str):
    """A whole study's evaluation space as ``alternatives_scored`` kept it (UMAP coordinates and fuzzy
    graph), with the set's cached embedding scaled as the space was built from it."""
    import scipy.sparse as sp

    from selector.stages.embedding import embed
    from selector.stages.evalspace import EvalSpace, space_vectors

    kept = np.load(space_file)
    vectors = embed(build(name), encoder, progress=False).vectors
    rows = len(kept["graph_indptr"]) - 1
    graph = sp.csr_matrix((kept["graph_data"], kept["graph_indices"], kept["graph_indptr"]), shape=(rows, rows))
    return EvalSpace(coords=kept["coords"], graph=graph, vectors=space_vectors(vectors),
                     graph_points=kept["graph_points"] if len(kept["graph_points"]) else None)


def settled_again(record: dict, path: Path) -> dict:
    """A stored whole study with its close call settled by the library's current rule
    (``selector.study.alternatives.settle``). The search never sees the rule, so the study's kept
    alternatives (with their labels) and evaluation space are all it needs; a record from before the
    rule gets its best trial as ``objective_choice``. Records without them are returned as they are."""
    import optuna

    from selector.stages.separation import separation
    from selector.study.alternatives import CHOSEN_ATTR, alternatives, settle

    space_file = path.with_suffix(".space.npz")
    kept = record.get("alternatives")
    if not isinstance(kept, list) or not kept or not space_file.is_file() or not all("labels" in a for a in kept):
        return record
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_ = optuna.create_study(direction="maximize")
    for alt in kept:
        study_.add_trial(optuna.trial.create_trial(value=alt["value"], user_attrs={"n_clusters": alt["k"]}))
    stored = dict(zip((t.number for t in study_.trials), kept))
    space = []

    def separated(trial):
        space[:] = space or [stored_space(space_file, record["set"], record["encoder"])]
        return separation(space[0], np.asarray(stored[trial.number]["labels"]), record["seed"])

    choice = stored[settle(study_, separated).number]
    best = stored[study_.best_trial.number]
    record["objective_choice"] = {"trial": best["trial"], "k": best["k"], "ami": best["ami"]}
    record["chosen_by"] = study_.user_attrs[CHOSEN_ATTR]["by"]
    record.update(chosen_k=choice["k"], best_ami=choice["ami"], best_objective_value=choice["value"],
                  selection_regret=record["oracle_ami"] - choice["ami"], labels=choice["labels"],
                  alternatives=[{**stored[a.trial.number], "gap": a.gap} for a in alternatives(study_)])
    return record


def study(task: tuple[str, str, int, int, str, str]) -> dict:
    import tempfile
    import warnings

    name, encoder, seed, n_trials, objective, out = task
    path = Path(out) / f"study-{objective}-{name}-{encoder}-{seed}-{n_trials}.json"
    if path.is_file():
        return settled_again(json.loads(path.read_text()), path)
    warnings.filterwarnings("ignore")
    from selector.stages.data import BUILTIN_DATASETS

    # The suite's sets join the built-in data sets in this process, so `tune` loads them by name and
    # finds the embeddings that the paired phase (or an earlier run) cached for the same content.
    BUILTIN_DATASETS.update({n: (lambda n=n: build(n)) for n in ALL_SETS if n not in BUILTIN_DATASETS})
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # as the CLI: no bar per read
        os.chdir(tmp)
        from selector.jobs.tune import tune_job
        from selector.study.alternatives import CHOSEN_ATTR, chosen_trial

        start = time.perf_counter()
        result = tune_job(dataset=name, encoder=encoder, n_trials=n_trials, seed=seed, objective=objective,
                          workers=1)  # the cases already run side by side
        wall = time.perf_counter() - start
        trials = [t for t in result.study.trials if t.state.name == "COMPLETE"]
        best = chosen_trial(result.study)
        import mlflow

        chosen = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=result.parent_run_id,
                                                                 artifact_path="clusters.csv", dst_path=tmp))
        record = {"set": name, "encoder": encoder, "seed": seed, "objective": objective, "wall_seconds": wall,
                  "true_k": int(len(np.unique(build(name).labels))), "chosen_k": best.user_attrs.get("n_clusters"),
                  "objective_seconds": float(sum(t.user_attrs.get("objective_seconds", 0.0) for t in trials)),
                  **{k: result.metrics.get(k) for k in ("best_objective_value", "best_ami", "oracle_ami",
                                                        "selection_regret", "paper_recipe_ami")},
                  # the chosen clustering, for rules that compare studies (``select``'s across encoders)
                  "params": best.params, "labels": chosen["cluster"].astype(int).tolist(),
                  # the objective's own choice, which the separation test may have passed over
                  "objective_choice": {"trial": result.study.best_trial.number,
                                       "k": result.study.best_trial.user_attrs.get("n_clusters"),
                                       "ami": result.study.best_trial.user_attrs.get("ami")},
                  "chosen_by": result.study.user_attrs.get(CHOSEN_ATTR, {}).get("by", "objective"),
                  "alternatives": alternatives_scored(result.study, name, encoder, seed,
                                                     path.with_suffix(".space.npz"))}
    path.write_text(json.dumps(record))
    return record


def encoder_choice(records: pd.DataFrame) -> pd.DataFrame:
    """``select``'s rule per (set, seed): the encoder with the highest objective value, against the
    encoder with the highest oracle AMI where it leads every other by at least 0.05."""
    rows = []
    images = records["encoder"].map(lambda name: get_encoder(name).takes == "images")
    for (name, seed), group in records[images].groupby(["set", "seed"]):
        if len(group) < 2:  # one encoder studied: nothing to choose between
            continue
        group = group.sort_values("oracle_ami", ascending=False)
        picked = group.loc[group["best_objective_value"].idxmax()]
        lead = group["oracle_ami"].iloc[0] - group["oracle_ami"].iloc[1]
        rows.append({"half": half(name), "set": name, "seed": seed, "picked": picked["encoder"],
                     "picked_ami": picked["best_ami"], "oracle_encoder": group["encoder"].iloc[0],
                     "lead": lead, "clear_lead": lead >= 0.05,
                     "right": picked["encoder"] == group["encoder"].iloc[0]})
    return pd.DataFrame(rows)


def cross_space_choice(records: pd.DataFrame, objective: str) -> pd.DataFrame:
    """Per (set, seed) with several image encoders (or layers): each study's chosen clustering scored by
    ``objective`` in every study's evaluation space. Three rules pick an encoder: ``own`` (the highest
    value in the encoder's own space), ``cross`` (``select``'s: the highest mean over all the spaces,
    ``selector.stages.objective.cross_space_values``) and ``agree`` (the clustering that agrees most, by mean
    AMI, with the other studies' chosen clusterings; two studies tie, and the first is taken). ``loss``: the
    best chosen AMI among the encoders minus the picked one's; ``lead``: the best chosen AMI minus the best final
    layer's (0 when no layer is among them)."""
    from selector.stages.embedding import embed
    from selector.stages.encoders import split_layer
    from selector.study.request import study_eval_space
    from selector.stages.objective import cross_space_values, get_objective

    rows = []
    images = records["encoder"].map(lambda name: get_encoder(name).takes == "images")
    usable = records[images & records["labels"].map(lambda v: isinstance(v, list))] if "labels" in records else []
    for (name, seed), group in (usable.groupby(["set", "seed"]) if len(usable) else []):
        if len(group) < 2:
            continue
        data = build(name)
        spaces = {encoder: study_eval_space(embed(data, encoder, progress=False), seed)
                  for encoder in group["encoder"]}
        partitions = {r["encoder"]: np.asarray(r["labels"]) for _, r in group.iterrows()}
        if len({len(p) for p in partitions.values()} | {len(sp.coords) for sp in spaces.values()}) != 1:
            continue  # an encoder skipped some files: the partitions do not cover the same points
        cross = cross_space_values(spaces, partitions, get_objective(objective), int(seed))
        own = dict(zip(group["encoder"], group["best_objective_value"]))
        ami = dict(zip(group["encoder"], group["best_ami"]))
        final = [ami[e] for e in ami if split_layer(e)[1] == 0]
        best = max(ami.values())
        pair_ami = {(a, b): adjusted_mutual_info_score(partitions[a], partitions[b])  # symmetric: once a pair
                    for a, b in itertools.combinations(partitions, 2)}
        agree = {e: float(np.mean([v for pair, v in pair_ami.items() if e in pair])) for e in partitions}
        for rule, values in (("own", own), ("cross", cross), ("agree", agree)):
            picked = max(values, key=values.get)
            rows.append({"half": half(name), "set": name, "seed": seed, "rule": rule, "encoders": len(group),
                         "picked": picked, "picked_ami": ami[picked], "best": max(ami, key=ami.get), "best_ami": best,
                         "lead": best - max(final) if final else 0.0, "loss": best - ami[picked]})
    return pd.DataFrame(rows)


def cross_space_summary(choice: pd.DataFrame) -> pd.DataFrame:
    """Per half and rule: mean and worst loss, how often the loss is over 0.05, and how often it is at
    most 0.05 where the best pair leads the final layers by 0.05 or more."""
    def one(group: pd.DataFrame) -> dict:
        led = group[group["lead"] >= 0.05]
        return ({"cases": len(group), "mean_loss": group["loss"].mean(), "worst_loss": group["loss"].max(),
                          "losses_over_0.05": int((group["loss"] > 0.05).sum()),
                          "led_cases": len(led), "led_within_0.05": int((led["loss"] <= 0.05).sum()),
                          "mean_picked_ami": group["picked_ami"].mean()})

    return _by_half_and_rule(choice, one)


def _by_half_and_rule(frame: pd.DataFrame, one) -> pd.DataFrame:
    return pd.DataFrame([{"half": h, "rule": r, **one(g)} for (h, r), g in frame.groupby(["half", "rule"])])


def cross_space_sets(choice: pd.DataFrame) -> pd.DataFrame:
    """Per half and rule, medians over seeds per set: the sets where the best pair's median lead over the
    final layers is 0.05 or more (*led*), and those of them where the median loss is at most 0.05."""
    per_set = choice.groupby(["half", "rule", "set"])[["lead", "loss"]].median().reset_index()

    def one(group: pd.DataFrame) -> dict:
        led = group[group["lead"] >= 0.05]
        return {"sets": len(group), "mean_median_loss": group["loss"].mean(),
                "worst_median_loss": group["loss"].max(), "led_sets": ", ".join(led["set"]) or "none",
                "led_within_0.05": int((led["loss"] <= 0.05).sum())}

    return _by_half_and_rule(per_set, one)


def say_reranked(rows: pd.DataFrame, say) -> None:
    """The re-ranking rules' summary per half (with how many runs each changed) and the per-case table."""
    table = summary(rows)
    changed = rows.groupby(["half", "objective"]).agg(changed_runs=("changed", "sum"), close_runs=("close", "sum"))
    say(markdown(table.merge(changed.reset_index(), on=["half", "objective"]).drop(columns="cost_share")))
    say("\n### Per case: chosen AMI (chosen k), medians over seeds\n")
    say(markdown(case_table(rows)))


def cached(tasks: list[tuple]) -> list[tuple]:
    """The pool tasks whose pool is already under their folder (``--cached_only``)."""
    return [t for t in tasks if (Path(t[4]) / f"pool-{t[0]}-{t[1]}-{t[2]}-{t[3]}.json").is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("paired", "studies", "grid", "rerank"), default="paired",
                        help="paired: pools scored by every objective; grid: products of the objectives' factors "
                             "on those pools; rerank: close calls between resolutions broken by a costlier "
                             "criterion, on those pools; studies: whole tune studies")
    parser.add_argument("--sets", default="generated,real",
                        help="set names or groups: generated, real, real-dev, real-held-out, real-fresh, real-few, "
                             "real-small, real-new, real-faces94, dev, held-out, fresh, points, points-dev, points-held-out")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n_trials", type=int, default=30)
    parser.add_argument("--objective", default="", help="studies: the objective to run (default: the library's)")
    parser.add_argument("--objectives", default="", help="paired: the objectives to compare (default: all)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=str(Path.home() / ".cache" / "selector" / "bench_selection"))
    parser.add_argument("--cached_only", action="store_true",
                        help="report the pools or studies already computed under --out, start none")
    parser.add_argument("--name", default="", help="the results file docs/benchmarks/<name>.md (default: from the "
                                                   "phase and objective)")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    pairs = combos(parse_sets(args.sets), args.encoders.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    out: list[str] = []

    def say(text: str = "") -> None:
        print(text)
        out.append(text)

    if args.phase == "grid":
        tasks = [(n, e, s, args.n_trials, args.out, ["modularity", "probe_information", "silhouette"])
                 for n, e in pairs for s in seeds]
        tasks = cached(tasks) if args.cached_only else tasks
        with ProcessPoolExecutor(args.jobs) as pool_:
            pools = list(pool_.map(pool, tasks))
        table = product_grid(pools)
        factors = [c[:-1] for c in table.columns if c.endswith("^")]
        k2 = [c for c in table.columns if c.endswith(" k2")]
        say(f"Products of the factors {', '.join(factors)} (exponents {', '.join(map(str, EXPONENTS))}) choosing "
            f"from the same pools ({args.n_trials} trials, seeds {args.seeds}); mean over cases of the median "
            "regret over seeds, per half; cases whose best trial has AMI < 0.1 left out; *k2*: runs choosing k = 2 "
            "where the truth has ≥ 6 classes. The 20 best by the mean over halves:\n")
        say(markdown(table.head(20)))
        say("\nThe 10 best among those with no k2 run in any half:\n")
        say(markdown(table[(table[k2] == 0).all(axis=1)].head(10)))
        say("\nThe named objectives:")
        named = {"modularity": (1, 0, 0), "modularity_silhouette": (1, 0, 1), "probe_information": (0, 1, 0),
                 "modularity_probe": (1, 0.25, 0), "modularity_silhouette_soft": (1, 0, 0.25)}
        keys = ["modularity^", "probe_information^", "silhouette^"]
        rows = [table[(table[keys] == pd.Series(dict(zip(keys, e)))).all(axis=1)] for e in named.values()]
        if "stability^" in table.columns:
            rows = [r[r["stability^"] == 0] for r in rows]
        say("\n" + markdown(pd.concat([r.assign(objective=n) for r, n in zip(rows, named)])))
        report.write(args.name or "bench_selection-grid", "bench_selection: products of the objectives' factors",
                     "\n".join(out))
        return

    if args.phase == "rerank":
        from selector.stages.objective import DEFAULT_OBJECTIVE

        objective = args.objective or DEFAULT_OBJECTIVE
        tasks = [(n, e, s, args.n_trials, args.out, [objective, *RERANK_BY]) for n, e in pairs for s in seeds]
        tasks = cached(tasks) if args.cached_only else tasks
        with ProcessPoolExecutor(args.jobs) as pool_:
            pools = list(pool_.map(pool, tasks))
        rows = rerank_rows(pools, objective)
        rows.to_csv(Path(args.out) / f"rerank-{objective}.csv", index=False)
        say(f"Pools of {args.n_trials} trials as in `--phase paired`, seeds {args.seeds}. Each pool's alternatives "
            f"(the best trial of each distinct resolution by `{objective}`, as a study keeps them); the choice, "
            "then *criterion within g*: among the alternatives whose gap to the choice is at most g, the one "
            "the criterion scores highest. Medians over seeds per case, then means over cases.\n")
        say_reranked(rows, say)
        report.write(args.name or "bench_selection-rerank", "bench_selection: re-ranking close calls", "\n".join(out))
        return

    if args.phase == "paired":
        from selector.stages.objective import OBJECTIVES

        objectives = args.objectives.split(",") if args.objectives else list(OBJECTIVES)
        tasks = [(n, e, s, args.n_trials, args.out, objectives) for n, e in pairs for s in seeds]
        tasks = cached(tasks) if args.cached_only else tasks
        with ProcessPoolExecutor(args.jobs) as pool_:
            pools = list(pool_.map(pool, tasks))
        rows = paired_rows(pools, objectives)
        rows.to_csv(Path(args.out) / "paired.csv", index=False)
        say(f"Pools of {args.n_trials} trials (the study's starting points, then a seeded random sampler), every "
            f"objective choosing its best from the same trials; seeds {args.seeds}; medians over seeds per case, "
            "then means over cases. *k2 runs*: runs (case × seed) choosing k = 2 where the truth has ≥ 6 classes.\n")
        say(markdown(summary(rows)))
        say("\n## Per case: chosen AMI (chosen k), medians over seeds\n")
        say(markdown(case_table(rows)))
        say("\n## select's rule (the encoder with the highest objective value) on the pools\n")
        say(markdown(paired_encoder_choice(pools, objectives)))
        if any("@" in e for e in args.encoders.split(",")):
            from selector.stages.objective import DEFAULT_OBJECTIVE

            layers = layer_choice(pools, DEFAULT_OBJECTIVE)
            say(f"\n## Layers: (encoder, layer) pairs chosen by select's rule with `{DEFAULT_OBJECTIVE}`\n")
            say(markdown(layers))
            led = layers[layers["lead_over_final"] >= 0.05]
            say(f"\nA pair leads the final layers by ≥ 0.05 AMI in {len(led)} of {len(layers)} (set, seed) cases; "
                f"there the pick is within 0.05 of the best pair in {int((led['loss'] <= 0.05).sum())}; "
                f"over all cases the pick loses {layers['loss'].mean():.3f} AMI on average "
                f"(median {layers['loss'].median():.3f}).")
        report.write(args.name or "bench_selection-paired", "bench_selection: paired pools", "\n".join(out))
        return

    from selector.stages.objective import DEFAULT_OBJECTIVE

    objective = args.objective or DEFAULT_OBJECTIVE
    tasks = [(n, e, s, args.n_trials, objective, args.out) for n, e in pairs for s in seeds]
    if args.cached_only:
        tasks = [t for t in tasks if (Path(args.out) / f"study-{objective}-{t[0]}-{t[1]}-{t[2]}-{t[3]}.json").is_file()]
    with ProcessPoolExecutor(args.jobs) as pool_:
        records = pd.DataFrame(list(pool_.map(study, tasks)))
    records.to_csv(Path(args.out) / f"studies-{objective}.csv", index=False)
    say(f"Whole `tune` studies (TPE following `{objective}`), {args.n_trials} trials, seeds {args.seeds}; medians "
        "over seeds per case. *k2 runs*: runs choosing k = 2 where the truth has ≥ 6 classes.\n")
    say(markdown(studies_case_table(records)))
    say()
    say(markdown(studies_summary(records)))
    pretrained = records[records["encoder"].map(lambda name: name not in ("raw", "none"))]
    if len(pretrained) and len(pretrained) < len(records):
        say("\nThe same, pretrained encoders only (no `raw`, no vector sets):\n")
        say(markdown(studies_summary(pretrained)))
    choice = encoder_choice(records)
    if len(choice):
        say("\n## The encoder (or layer) with the highest objective value in its own space, against the oracle's\n")
        say(markdown(choice))
        clear = choice[choice["clear_lead"]]
        say(f"\nencoder choice: right in {int(clear['right'].sum())} of {len(clear)} cases with a clear (≥ 0.05) "
            f"oracle lead; in all cases {int(choice['right'].sum())} of {len(choice)}")
    cross = cross_space_choice(records, objective)
    if len(cross):
        cross.to_csv(Path(args.out) / f"choice-{args.name or objective}.csv", index=False)
        say("\n## Picking the encoder: its own space, every study's space, or agreement\n")
        say("Per (set, seed): `own` picks the study with the highest objective value in its own evaluation "
            "space; `cross` scores each study's chosen clustering in every study's evaluation space and picks "
            "the highest mean; `agree` picks the chosen clustering with the highest mean AMI against the other "
            "studies' chosen clusterings. *loss*: the best chosen AMI among the studies minus the picked one's; "
            "*led*: cases where the best (encoder, layer) leads the best final layer by ≥ 0.05 AMI.\n")
        say(markdown(cross_space_summary(cross)))
        say("\nThe same per set, medians over seeds:\n")
        say(markdown(cross_space_sets(cross)))
        wide = cross.pivot_table(index=["half", "set", "seed", "best", "best_ami", "lead"], columns="rule",
                                 values=["picked", "loss"], aggfunc="first")
        wide.columns = [f"{value} ({rule})" for value, rule in wide.columns]
        say("\n" + markdown(wide.reset_index()))
    settled = settled_summary(records)
    if len(settled):
        say("\n## Close calls settled by separation, against the objective's own best trial\n")
        from selector.study.alternatives import CLOSE

        say("The study's choice is its best trial unless none of that trial's clusters is apart from its "
            "nearest neighbour (a density dip between them) and an alternative within "
            f"{CLOSE:.0%} of it has every "
            "cluster apart (`selector.study.alternatives.settle`, applied again to stored studies by "
            "`settled_again`); *objective_*: the best trial's, from the same search. *settled_runs*: runs whose "
            "choice the test moved. Medians over seeds per case, then means over cases.\n")
        say(markdown(settled))
        moves = settled_moves(records)
        say("\nThe runs it moved:\n\n" + markdown(moves) if len(moves) else "\nIt moved no run.")
    reranked = studies_rerank_rows(records, objective)
    if len(reranked):
        reranked.to_csv(Path(args.out) / f"rerank-studies-{args.name or objective}.csv", index=False)
        say("\n## Re-ranking close calls\n")
        say("Each study's alternatives (the best trial of each distinct resolution, its choice first), refitted "
            "and scored by costlier criteria; *criterion within g*: among the alternatives whose gap to the "
            "choice is at most g, the one the criterion scores highest (as `--phase rerank` on the pools).\n")
        say_reranked(reranked, say)
    report.write(args.name or f"bench_selection-studies-{objective}", f"bench_selection: whole studies, {objective}",
                 "\n".join(out))


def _per_case(records: pd.DataFrame) -> pd.DataFrame:
    records = records.assign(share=records["objective_seconds"] / records["wall_seconds"],
                             k2=(records["chosen_k"] == 2) & (records["true_k"] >= 6))
    per_case = records.groupby(["set", "encoder"]).median(numeric_only=True).reset_index()
    per_case["k2_runs"] = records.groupby(["set", "encoder"])["k2"].sum().to_numpy()
    per_case["half"] = per_case["set"].map(half)
    per_case["hopeless"] = per_case["oracle_ami"] < HOPELESS
    per_case["collapse"] = (per_case["best_ami"] < 0.5 * per_case["oracle_ami"]) & ~per_case["hopeless"]
    return per_case


def studies_case_table(records: pd.DataFrame) -> pd.DataFrame:
    return _per_case(records)[["half", "set", "encoder", "best_ami", "oracle_ami", "selection_regret", "chosen_k",
                               "true_k", "k2_runs", "paper_recipe_ami", "share", "wall_seconds"]].sort_values(
        ["half", "set", "encoder"])


def studies_summary(records: pd.DataFrame) -> pd.DataFrame:
    per_case = _per_case(records)
    return per_case.groupby("half").agg(cases=("selection_regret", "size"), hopeless=("hopeless", "sum"),
                                        mean_regret=("selection_regret", "mean"),
                                        worst_regret=("selection_regret", "max"), collapses=("collapse", "sum"),
                                        k2_runs=("k2_runs", "sum"), mean_chosen_ami=("best_ami", "mean"),
                                        mean_paper_recipe_ami=("paper_recipe_ami", "mean"),
                                        median_share=("share", "median")).reset_index()


def settled_moves(records: pd.DataFrame) -> pd.DataFrame:
    """The runs whose choice the separation test moved: the best trial's k and AMI, and the choice's."""
    if "chosen_by" not in records:
        return pd.DataFrame()
    moved = records[records["chosen_by"] == "separation"]
    return pd.DataFrame({"half": moved["set"].map(half), "set": moved["set"], "encoder": moved["encoder"],
                         "seed": moved["seed"], "true_k": moved["true_k"],
                         "objective_k": moved["objective_choice"].map(lambda v: v["k"]),
                         "objective_ami": moved["objective_choice"].map(lambda v: v["ami"]),
                         "chosen_k": moved["chosen_k"], "chosen_ami": moved["best_ami"]}).sort_values(
        ["half", "set", "encoder", "seed"])


def settled_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Per half: the studies' choices (close calls settled by the separation test) against their best
    trials (the objective's own choice), from the records that carry both."""
    if "objective_choice" not in records:
        return pd.DataFrame()
    usable = records[records["objective_choice"].map(lambda v: isinstance(v, dict))]
    if not len(usable):
        return pd.DataFrame()
    runs = usable.assign(objective_ami=usable["objective_choice"].map(lambda v: v["ami"]),
                         objective_k=usable["objective_choice"].map(lambda v: v["k"]),
                         settled=usable["chosen_by"] == "separation")
    runs = runs.assign(objective_regret=runs["oracle_ami"] - runs["objective_ami"],
                       k2=(runs["chosen_k"] == 2) & (runs["true_k"] >= 6),
                       objective_k2=(runs["objective_k"] == 2) & (runs["true_k"] >= 6))
    per_case = runs.groupby(["set", "encoder"]).agg(
        regret=("selection_regret", "median"), objective_regret=("objective_regret", "median"),
        chosen_ami=("best_ami", "median"), objective_ami=("objective_ami", "median"),
        recipe_ami=("paper_recipe_ami", "median"), settled_runs=("settled", "sum"), k2_runs=("k2", "sum"),
        objective_k2_runs=("objective_k2", "sum")).reset_index()
    per_case["half"] = per_case["set"].map(half)
    return per_case.groupby("half").agg(
        cases=("regret", "size"), mean_regret=("regret", "mean"), objective_mean_regret=("objective_regret", "mean"),
        mean_chosen_ami=("chosen_ami", "mean"), objective_mean_ami=("objective_ami", "mean"),
        mean_paper_recipe_ami=("recipe_ami", "mean"), settled_runs=("settled_runs", "sum"),
        k2_runs=("k2_runs", "sum"), objective_k2_runs=("objective_k2_runs", "sum")).reset_index()


if __name__ == "__main__":
    main()
