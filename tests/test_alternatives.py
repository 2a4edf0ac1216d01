"""A study's alternatives: the best trial of each distinct resolution, and how decisive its choice was."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from selector.study.alternatives import alternatives, choice_margin, chosen_trial, settle, table


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


def study_of(trials):
    study = optuna.create_study(direction="maximize")
    for made in trials:
        study.add_trial(made)
    return study


def cut(pairs: int, apart: int):
    from selector.stages.separation import Separation

    return Separation(pairs=pairs, apart=apart)


def test_a_close_call_goes_to_the_best_alternative_whose_clusters_are_apart_and_every_reader_agrees():
    # k=7 scores best, none of its 5 cuts through a valley; k=2 is 5 % below and apart; k=12 is 8 % below and
    # apart too; k=40 is too far below.
    study = study_of([trial(0, 1.00, 7), trial(1, 0.95, 2), trial(2, 0.92, 12), trial(3, 0.50, 40)])
    parts = {0: cut(5, 0), 1: cut(1, 1), 2: cut(10, 10), 3: cut(30, 30)}
    tested = []
    settled = settle(study, lambda t: tested.append(t.number) or parts[t.number])
    assert settled.number == 1 and tested == [0, 1]  # best first; the first that is apart wins
    assert chosen_trial(study).number == 1
    found = alternatives(study)
    assert [a.trial.number for a in found] == [1, 0, 2, 3]
    assert found[1].gap == pytest.approx((0.95 - 1.00) / 0.95)  # the best scores above the choice
    assert choice_margin(found) < 0
    assert study.user_attrs["chosen_trial"] == {"trial": 1, "best": 0, "by": "separation"}
    assert [a.trial.number for a in alternatives(study, settled=False)] == [0, 1, 2, 3]


def test_the_best_trial_stays_the_choice_when_any_of_it_is_apart_no_other_is_or_none_is_close():
    def two():
        return study_of([trial(0, 1.0, 7), trial(1, 0.95, 2)])

    assert settle(two(), lambda t: cut(6, 6) if t.number == 0 else cut(1, 1)).number == 0
    assert settle(two(), lambda t: cut(6, 1) if t.number == 0 else cut(1, 1)).number == 0  # one valley: kept
    assert settle(two(), lambda t: cut(6, 0) if t.number == 0 else cut(1, 1)).number == 1
    assert settle(two(), lambda t: cut(6, 0) if t.number == 0 else cut(1, 0)).number == 0  # no other is apart
    alone = study_of([trial(0, 1.0, 7), trial(1, 0.5, 2)])
    assert settle(alone, lambda t: pytest.fail("no close call, nothing to test")).number == 0
    assert alone.user_attrs["chosen_trial"]["by"] == "objective"
    assert settle(study_of([]), lambda t: cut(1, 1)) is None


def test_a_settled_choice_lapses_when_a_better_trial_arrives():
    study = study_of([trial(0, 1.00, 7), trial(1, 0.95, 2)])
    settle(study, lambda t: cut(5, 0) if t.number == 0 else cut(1, 1))
    assert chosen_trial(study).number == 1
    study.add_trial(trial(2, 1.10, 5))
    assert chosen_trial(study).number == 2 and alternatives(study)[0].gap == 0
