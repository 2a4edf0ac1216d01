"""The partitions a person might pick instead: the best trial of each distinct resolution.

A label-free objective ranks partitions at every k on one scale, and two very different ones can
score close (two far-apart groups of classes against the classes themselves). So a study keeps, besides
its choice, the best trial of each resolution that differs from every better one's by a factor of
``RESOLUTION_RATIO`` or more in its number of clusters, and says how far its choice leads the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna

from selector.objective import WORST

RESOLUTION_RATIO = 1.5  # k = 6 and k = 9 are distinct resolutions; k = 9 and k = 12 are not
MAX_ALTERNATIVES = 5  # the choice and at most four others
CLOSE = 0.1  # a runner-up within 10 % of the choice's value is a close call, and the summary says so


@dataclass(frozen=True)
class Alternative:
    """One of a study's alternatives: its trial, number of clusters and how far below the choice it scores."""

    trial: optuna.trial.FrozenTrial
    k: int
    gap: float  # (chosen value − this value) / |chosen value|; 0 for the choice itself


def alternatives(study_or_trials, limit: int = MAX_ALTERNATIVES, ratio: float = RESOLUTION_RATIO) -> list[Alternative]:
    """The study's choice first, then the best trial of each other resolution, best first.

    A trial counts when it completed with a value above the degenerate score and at least two
    clusters; it is kept when its k differs by ``ratio``× or more from the k of every trial kept before it."""
    trials = study_or_trials.trials if hasattr(study_or_trials, "trials") else list(study_or_trials)
    scored = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
              and t.value > WORST and int(t.user_attrs.get("n_clusters", 0)) >= 2]
    scored.sort(key=lambda t: (-t.value, t.number))
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
    when no other resolution was reached)."""
    return found[1].gap if len(found) > 1 else None


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
