"""The truth's own fairness: computed on the gate's rows with the gate's measures."""

from __future__ import annotations

import numpy as np

from training.evaluate import fairness_report, protected_groups
from training.oracle_fairness import oracle_fairness
from training.pipeline import oracle_pd, outcomes, split
from training.profiles import get_profile
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world


def test_the_oracles_gaps_are_the_gates_measures_on_the_gates_rows() -> None:
    result = oracle_fairness("tiny", [0.76])
    profile = get_profile("tiny")
    book = loan_book_from_world(generate_world(profile.n_members, profile.seed))
    y, truth = outcomes(book), oracle_pd(book)
    assert truth is not None
    splits = split(book.labelled, profile)
    held = np.sort(np.concatenate([splits.test, splits.out_of_time]))
    assert result["rows"]["held_out"]["n"] == held.size
    assert result["rows"]["all_labelled"]["n"] == y.size
    # the point estimates are fairness_report's (the gate's) for the lowest-PD 76 % approved
    approved = truth[held] <= np.quantile(truth[held], 0.76)
    report = fairness_report(y[held], approved, protected_groups(book, held))
    measured = result["rows"]["held_out"]["by_approval_share"]["0.76"]
    assert set(measured) == {"gender", "age_band"}
    for attribute, entry in measured.items():
        expected = report[attribute]["equal_opportunity_difference"]
        assert entry["equal_opportunity_difference"] == round(expected, 4)
        assert entry["disparate_impact_ratio"] == round(
            report[attribute]["disparate_impact_ratio"], 4
        )
        low, high = entry["bootstrap_interval"]
        assert 0.0 <= low <= high <= 1.0
