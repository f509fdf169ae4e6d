"""Credit-team metrics: band rates, cut-off confusion, loss and profit, information values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from services.common.decision import DecisionBands
from training.baseline import fit_logistic_scorecard
from training.credit_metrics import (
    band_rates,
    confusion_at_cutoffs,
    credit_report,
    information_values,
    loss_and_profit,
)
from training.scorecard import BusinessCost, choose_bands

# Ten applications: PDs rising, defaults among the riskier ones.
PD = np.array([0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5, 0.7])
Y = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 1])
BANDS = DecisionBands(approve_below_pd=0.06, decline_at_or_above_pd=0.25)


def test_band_rates_by_hand() -> None:
    table = band_rates(Y, PD, BANDS)
    assert table["approve"] == {"n": 4, "share": 0.4, "defaults": 1, "bad_rate": 0.25}
    assert table["review"] == {
        "n": 3,
        "share": 0.3,
        "defaults": 1,
        "bad_rate": pytest.approx(1 / 3),
    }
    assert table["decline"] == {
        "n": 3,
        "share": 0.3,
        "defaults": 2,
        "bad_rate": pytest.approx(2 / 3),
    }
    empty = band_rates(Y, PD, DecisionBands(0.0, 0.0))  # decline everybody
    assert empty["approve"]["bad_rate"] is None and empty["decline"]["n"] == 10


def test_confusion_at_both_cut_offs_by_hand() -> None:
    c = confusion_at_cutoffs(Y, PD, BANDS)
    # Not approved (pd >= 0.06): 6 rows, defaults at 0.2, 0.5, 0.7.
    assert c["approve"] == {
        "threshold_pd": 0.06,
        "defaulted_flagged": 3,
        "defaulted_not_flagged": 1,
        "repaid_flagged": 3,
        "repaid_not_flagged": 3,
    }
    # Declined (pd >= 0.25): 0.3 repaid, 0.5 and 0.7 defaulted.
    assert c["decline"] == {
        "threshold_pd": 0.25,
        "defaulted_flagged": 2,
        "defaulted_not_flagged": 2,
        "repaid_flagged": 1,
        "repaid_not_flagged": 5,
    }


def test_loss_and_profit_by_hand() -> None:
    cost = BusinessCost()
    amount = np.full(10, 10_000.0)
    money = loss_and_profit(Y, PD, BANDS, amount, cost)
    approved = PD < 0.06
    assert money["expected_loss_kes"] == pytest.approx(np.sum(PD[approved]) * 0.65 * 10_000)
    assert money["realised_loss_kes"] == pytest.approx(0.65 * 10_000)  # one approved default
    assert money["approved_amount_kes"] == 40_000.0
    # Approved: 3 repay (+0.18 x 10,000 each), 1 defaults (-6,500). Reviewed: 300 each; the
    # defaulter costs 0.4 x 6,500, the two repayers earn 0.9 x 1,800. Declined: 0.
    review = 3 * 300 + 0.4 * 6_500 - 2 * 0.9 * 1_800
    expected = 3 * 1_800 - 6_500 - review
    assert money["profit_kes"] == pytest.approx(expected)
    assert money["profit_per_application_kes"] == pytest.approx(expected / 10)
    assert money["approve_all_profit_kes"] == pytest.approx(6 * 1_800 - 4 * 6_500)
    assert money["perfect_foresight_profit_kes"] == pytest.approx(6 * 1_800)


def test_profit_is_minus_the_cost_choose_bands_minimised() -> None:
    rng = np.random.default_rng(3)
    pd = 1.0 / (1.0 + np.exp(-rng.normal(-2.0, 1.0, 5_000)))
    y = rng.binomial(1, pd)
    amount = rng.lognormal(np.log(50_000.0), 0.5, 5_000)
    cost = BusinessCost()
    bands, summary = choose_bands(pd, y, amount, cost)
    money = loss_and_profit(y, pd, bands, amount, cost)
    assert money["profit_per_application_kes"] == pytest.approx(-summary["expected_cost_kes"])
    assert money["perfect_foresight_profit_kes"] >= money["profit_kes"]
    assert money["profit_kes"] >= money["approve_all_profit_kes"]


def test_credit_report_is_json_safe_and_includes_pr_auc() -> None:
    report = credit_report(Y, PD, BANDS, np.full(10, 1_000.0), BusinessCost())
    assert report["pr_auc"] == pytest.approx(average_precision_score(Y, PD))
    assert report["default_rate"] == 0.4
    json.dumps(report, allow_nan=False)


def test_metrics_refuse_bad_inputs() -> None:
    with pytest.raises(ValueError):
        band_rates(Y[:-1], PD, BANDS)
    with pytest.raises(ValueError):
        confusion_at_cutoffs(Y + 1, PD, BANDS)
    with pytest.raises(ValueError):
        loss_and_profit(Y, PD, BANDS, np.zeros(10), BusinessCost())


def test_information_values_rank_the_informative_variable_first() -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    signal, noise = rng.normal(size=n), rng.normal(size=n)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-(1.5 * signal - 1.0))))
    names = ("noise", "signal")
    scorecard = fit_logistic_scorecard(np.column_stack([noise, signal]), y, names)
    table = information_values(scorecard)
    assert [row["variable"] for row in table] == ["signal", "noise"]
    summary = scorecard.binning_process_.summary().set_index("name")
    for row in table:
        assert row["iv"] == pytest.approx(float(summary.loc[row["variable"], "iv"]))
        assert row["bins"] == int(summary.loc[row["variable"], "n_bins"])
    assert table[0]["iv"] > 0.3 and table[0]["strength"] in {"strong", "suspicious"}
    assert table[1]["iv"] < 0.02 and table[1]["strength"] == "useless"
    json.dumps(table, allow_nan=False)
