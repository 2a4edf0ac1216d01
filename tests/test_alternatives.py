"""A study's alternatives: the best trial of each distinct resolution, and how decisive its choice was."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from selector.study.alternatives import alternatives, choice_margin, table


def trial(number: int, value: float, k: int, state=optuna.trial.TrialState.COMPLETE, **attrs):
    made = optuna.trial.create_trial(
        state=state, value=value if state == optuna.trial.TrialState.COMPLETE else None,
        params={"clusterer": "kmeans"}, distributions={"clusterer": CategoricalDistribution(["kmeans"])},
        user_attrs={"n_clusters": k, **attrs})
    made.number = number
    return made


def test_the_choice_comes_first_then_the_best_of_each_resolution_far_enough_from_every_better_one():
    trials = [trial(0, 0.50, 2), trial(1, 0.48, 3), trial(2, 0.45, 10), trial(3, 0.44, 11), trial(4, 0.40, 40),
              trial(5, 0.30, 4), trial(6, 0.60, 9, ami=0.9)]
    found = alternatives(trials)
    assert [a.trial.number for a in found] == [6, 0, 1, 4]  # 10 and 11 are within 1.5x of 9; 4 of 3
    assert [a.k for a in found] == [9, 2, 3, 40]
    assert found[0].gap == 0 and found[1].gap == pytest.approx((0.60 - 0.50) / 0.60)
    assert choice_margin(found) == pytest.approx(1 / 6)
    frame = table(found)
    assert list(frame["trial"]) == [6, 0, 1, 4] and list(frame["chosen"]) == [True, False, False, False]
    assert {"trial", "k", "clusterer", "objective_value", "gap", "ami"} <= set(frame.columns)


def test_degenerate_failed_and_one_cluster_trials_are_no_alternatives_and_one_resolution_has_no_margin():
    trials = [trial(0, 0.7, 5), trial(1, -1.0, 50), trial(2, 0.6, 1), trial(3, 0.0, 30, optuna.trial.TrialState.FAIL),
              trial(4, 0.65, 6)]
    found = alternatives(trials)
    assert [a.trial.number for a in found] == [0]
    assert choice_margin(found) is None and alternatives([]) == []
    assert "ami" not in table(found).columns


def test_the_limit_keeps_the_best_resolutions():
    trials = [trial(i, 1.0 - i / 10, 2 * 2 ** i) for i in range(8)]
    assert [a.k for a in alternatives(trials, limit=3)] == [2, 4, 8]
