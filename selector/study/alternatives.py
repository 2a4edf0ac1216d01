"""The partitions a person might pick instead: the best trial of each distinct resolution.

A label-free objective ranks partitions at every k on one scale, and two very different ones can
score close (two far-apart groups of classes against the classes themselves). So a study keeps, besides
its choice, the best trial of each resolution that differs from every better one's by a factor of
``RESOLUTION_RATIO`` or more in its number of clusters, and says how far its choice leads the next.
A close call is settled by whether the clusters are apart (``settle_choice``): the choice is the best
trial unless none of its clusters shows a density dip from its neighbour and a close alternative's all do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna

from selector.stages.objective import WORST

RESOLUTION_RATIO = 1.5  # k = 6 and k = 9 are distinct resolutions; k = 9 and k = 12 are not
MAX_ALTERNATIVES = 5  # the choice and at most four others
CLOSE = 0.1  # a runner-up within 10 % of the choice's value is a close call, and the summary says so
CHOSEN_ATTR = "chosen_trial"  # the study's user attribute naming a settled choice


@dataclass(frozen=True)
class Alternative:
    """One of a study's alternatives: its trial, number of clusters and how far below the choice it scores."""

    trial: optuna.trial.FrozenTrial
    k: int
    gap: float  # (chosen value − this value) / |chosen value|; 0 for the choice itself


def alternatives(study_or_trials, limit: int = MAX_ALTERNATIVES, ratio: float = RESOLUTION_RATIO,
                 settled: bool = True) -> list[Alternative]:
    """The study's choice first, then the best trial of each other resolution, best first.

    A trial counts when it completed with a value above the degenerate score and at least two
    clusters; it is kept when its k differs by ``ratio``× or more from the k of every trial kept before it.
    The choice is the best trial, or the trial ``settle_choice`` named (``settled=False``: the best trial
    regardless); gaps are measured from the choice, so one that scores above it has a negative gap."""
    trials = study_or_trials.trials if hasattr(study_or_trials, "trials") else list(study_or_trials)
    scored = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
              and t.value > WORST and int(t.user_attrs.get("n_clusters", 0)) >= 2]
    scored.sort(key=lambda t: (-t.value, t.number))
    choice = _settled(study_or_trials, scored) if settled else None
    if choice is not None:
        scored = [choice] + [t for t in scored if t.number != choice.number]
    kept: list[optuna.trial.FrozenTrial] = []
    for trial in scored:
        k = int(trial.user_attrs["n_clusters"])
        if all(abs(math.log(k / int(other.user_attrs["n_clusters"]))) >= math.log(ratio) for other in kept):
            kept.append(trial)
            if len(kept) == limit:
                break
    if not kept:
        return []
    top = kept[0].value
    scale = abs(top) if top else 1.0
    return [Alternative(t, int(t.user_attrs["n_clusters"]), (top - t.value) / scale) for t in kept]


def choice_margin(found: list[Alternative]) -> float | None:
    """How decisive the choice is: the relative gap to the best trial at another resolution (``None``
    when no other resolution was reached; negative when the separation test chose below that trial)."""
    return found[1].gap if len(found) > 1 else None


def _settled(study, scored: list) -> optuna.trial.FrozenTrial | None:
    """The trial ``settle_choice`` named, while the best trial is still the one it settled against."""
    named = getattr(study, "user_attrs", {}).get(CHOSEN_ATTR)
    if not isinstance(named, dict) or not scored or scored[0].number != named.get("best"):
        return None
    return next((t for t in scored if t.number == named.get("trial")), None)


def chosen_trial(study) -> optuna.trial.FrozenTrial:
    """The study's choice: the best trial, or the close alternative ``settle_choice`` named instead."""
    found = alternatives(study, limit=1)
    return found[0].trial if found else study.best_trial


def settle_choice(study, ctx, within: float = CLOSE) -> optuna.trial.FrozenTrial | None:
    """``settle`` with the study's own test: each close alternative refitted through the study's
    ``SearchContext`` (its cache holds the reductions) and its clusters tested in its evaluation space."""
    from selector.stages.separation import separation
    from selector.study import trials

    def separated(trial):
        return separation(ctx.eval_space, trials.trial_fit(ctx, trial)[1].labels_, ctx.seed)

    return settle(study, separated, within)


def settle(study, separated, within: float = CLOSE) -> optuna.trial.FrozenTrial | None:
    """Settle a close call. When none of the best trial's clusters is apart from the cluster it touches
    most (``separated(trial)``, a ``selector.stages.separation.Separation``) — none of its cuts runs
    through a valley — the choice is the next alternative within ``within`` of the best objective value,
    best first, whose every cluster is apart; otherwise, or when none is, the best trial. The
    answer is kept on the study (user attribute ``chosen_trial``), so every reader of the study's choice
    (``chosen_trial``, ``alternatives``) agrees."""
    close = [a for a in alternatives(study, settled=False) if a.gap <= within]
    if not close:
        return None
    choice = close[0].trial
    if len(close) > 1 and separated(choice).apart == 0:
        choice = next((a.trial for a in close[1:] if separated(a.trial).separated), choice)
    study.set_user_attr(CHOSEN_ATTR, {"trial": choice.number, "best": close[0].trial.number,
                                      "by": "objective" if choice is close[0].trial else "separation"})
    return choice


def table(found: list[Alternative]):
    """``alternatives.csv``: one row per alternative — trial, k, clusterer, objective value, the gap to
    the choice, noise, AMI when the data set has labels, and the trial's MLflow run."""
    import pandas as pd

    rows = []
    for rank, alt in enumerate(found):
        attrs = alt.trial.user_attrs
        row = {"trial": alt.trial.number, "k": alt.k, "clusterer": alt.trial.params.get("clusterer"),
               "reducer": alt.trial.params.get("reducer"), "objective_value": alt.trial.value,
               "gap": alt.gap, "noise_fraction": attrs.get("noise_fraction"), "chosen": rank == 0,
               "mlflow_run_id": attrs.get("mlflow_run_id")}
        if "ami" in attrs:
            row["ami"] = attrs["ami"]
        rows.append(row)
    return pd.DataFrame(rows)
