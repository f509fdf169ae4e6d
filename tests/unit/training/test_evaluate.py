"""Evaluation metrics agree with scikit-learn and hand computation; fairness gaps are right."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from scipy.stats import ks_2samp
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from training.evaluate import (
    classification_metrics,
    expected_calibration_error,
    fairness_report,
    ks_statistic,
    pr_auc,
)


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-rng.normal(-2.5, 1.0, n)))
    return rng.binomial(1, p), p


# --- discrimination and calibration ------------------------------------------------------------


def test_metrics_agree_with_sklearn() -> None:
    y, p = _calibrated(5_000, seed=21)
    metrics = classification_metrics(y, p)
    assert set(metrics) == {"auc", "pr_auc", "ks", "brier", "ece"}
    assert all(type(v) is float for v in metrics.values())
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert metrics["pr_auc"] == pr_auc(y, p)
    assert metrics["ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    assert metrics["ece"] == expected_calibration_error(y, p)


def test_ks_by_hand() -> None:
    # Repayers score 0.1, 0.2, 0.5; defaulters 0.3, 0.4, 0.6. At a cut of 0.2 two thirds of the
    # repayers and none of the defaulters lie below: KS = 2/3.
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert ks_statistic(y, p) == pytest.approx(2 / 3)
    assert ks_statistic(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0


def test_pr_auc_by_hand() -> None:
    # Ranked by p: 1 (precision 1/1), 0, 1 (precision 2/3), 0. AP = 0.5 * 1 + 0.5 * 2/3.
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.6, 0.9])
    assert pr_auc(y, p) == pytest.approx(0.5 + 1 / 3)
    # No skill: every PD equal gives the default rate, not 0.5.
    y_rare = np.array([1] + [0] * 9)
    assert pr_auc(y_rare, np.full(10, 0.2)) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        pr_auc(np.array([0, 0]), np.array([0.1, 0.2]))


def test_ece_by_hand() -> None:
    # Two quantile bins: {0.1, 0.2} with no defaults, {0.3, 0.4} with two.
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.15 + 0.5 * 0.65)
    # One bin: the gap between the mean PD and the default rate.
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(0.25 - 0.5))


def test_ece_keeps_tied_predictions_in_one_bin() -> None:
    y = np.array([0, 0, 0, 0, 1] * 200)
    p = np.full(y.size, 0.2)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_small_when_calibrated_and_large_when_shifted() -> None:
    y, p = _calibrated(200_000, seed=22)
    assert expected_calibration_error(y, p) < 0.003
    assert expected_calibration_error(y, np.clip(p + 0.05, 0, 1)) == pytest.approx(0.05, abs=0.005)


def test_metrics_refuse_bad_inputs() -> None:
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([0, 1]), np.array([0.1]))


# --- fairness ----------------------------------------------------------------------------------


def _block(good_approved: int, good_declined: int, bad_approved: int, bad_declined: int) -> tuple:
    y_default = [0] * (good_approved + good_declined) + [1] * (bad_approved + bad_declined)
    approved = [1] * good_approved + [0] * good_declined + [1] * bad_approved + [0] * bad_declined
    return y_default, approved


def test_identical_behaviour_across_groups_is_perfectly_fair() -> None:
    y_block, approved_block = _block(
        good_approved=70, good_declined=10, bad_approved=5, bad_declined=15
    )
    y = np.array(y_block * 3)
    approved = np.array(approved_block * 3, dtype=bool)
    groups = {
        "gender": np.repeat(["female", "male", "female"], 100),
        "age_band": np.repeat(["18-25", "26-40", "41+"], 100),
    }
    report = fairness_report(y, approved, groups)
    assert set(report) == {"gender", "age_band"}
    for attribute in report.values():
        assert attribute["disparate_impact_ratio"] == 1.0
        assert attribute["equal_opportunity_difference"] == 0.0
        assert attribute["average_odds_difference"] == 0.0
        assert attribute["within_targets"] is True
    assert report["age_band"]["groups"]["18-25"] == {
        "n": 100,
        "approval_rate": 0.75,
        "tpr": 70 / 80,
        "fpr": 5 / 20,
    }
    json.dumps(report, allow_nan=False)


def test_biased_case_gives_the_hand_computed_gaps() -> None:
    # A: 20 good (16 approved), 10 bad (3 approved) -> approval 19/30, TPR 0.8, FPR 0.3
    # B: 20 good (10 approved), 10 bad (1 approved) -> approval 11/30, TPR 0.5, FPR 0.1
    # C: 20 good (14 approved), 10 bad (2 approved) -> approval 16/30, TPR 0.7, FPR 0.2
    ya, aa = _block(16, 4, 3, 7)
    yb, ab = _block(10, 10, 1, 9)
    yc, ac = _block(14, 6, 2, 8)
    y = np.array(ya + yb + yc)
    approved = np.array(aa + ab + ac)
    region = np.repeat(["A", "B", "C"], 30)
    report = fairness_report(y, approved, {"region": region})["region"]

    assert report["groups"]["A"]["approval_rate"] == pytest.approx(19 / 30)
    assert report["groups"]["B"]["tpr"] == pytest.approx(0.5)
    assert report["groups"]["C"]["fpr"] == pytest.approx(0.2)
    assert report["disparate_impact_ratio"] == pytest.approx(11 / 19)
    assert report["equal_opportunity_difference"] == pytest.approx(0.3)
    assert report["average_odds_difference"] == pytest.approx((0.3 + 0.2) / 2)
    assert report["within_targets"] is False

    # Same numbers as fairlearn's own helpers (truth = good borrower, prediction = approved).
    good = 1 - y
    assert report["disparate_impact_ratio"] == pytest.approx(
        demographic_parity_ratio(good, approved, sensitive_features=region)
    )
    assert report["equal_opportunity_difference"] == pytest.approx(
        equal_opportunity_difference(good, approved, sensitive_features=region)
    )
    assert report["average_odds_difference"] == pytest.approx(
        equalized_odds_difference(good, approved, sensitive_features=region, agg="mean")
    )


def test_group_without_defaulters_has_no_fpr_instead_of_zero() -> None:
    ya, aa = _block(8, 2, 4, 6)  # FPR 0.4
    yb, ab = _block(8, 2, 0, 0)  # nobody defaulted: FPR undefined
    report = fairness_report(
        np.array(ya + yb), np.array(aa + ab), {"gender": np.repeat(["f", "m"], [20, 10])}
    )["gender"]
    assert report["groups"]["m"]["fpr"] is None
    assert report["equal_opportunity_difference"] == 0.0
    assert report["average_odds_difference"] == 0.0  # one FPR defined: no FPR gap
    json.dumps(report, allow_nan=False)


def test_fairness_refuses_mismatched_groups() -> None:
    with pytest.raises(ValueError, match="gender"):
        fairness_report(np.array([0, 1]), np.array([1, 0]), {"gender": np.array(["f"])})
