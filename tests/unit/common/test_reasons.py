"""Reason codes: the strongest risk-raising features, in words a member can read."""

from __future__ import annotations

import numpy as np

from services.common.features import TABULAR_FEATURES
from services.common.reasons import REASON_TEXT, describe, reason_codes


def test_reason_text_reads_like_a_sentence() -> None:
    assert describe("rp_late_count_6m", 3) == "3 late repayments in the last 6 months"
    assert describe("rp_late_count_6m", 1) == "1 late repayment in the last 6 months"
    assert describe("loan_to_savings", 4.2) == "loan is 4.2 times your savings"
    assert describe("n_guarantors", 0) == "no guarantors"
    assert describe("bureau_listed", 1) == "listed with a credit reference bureau"
    assert describe("bureau_listed", 0) is None  # not being listed never explains a risk
    assert (
        describe("existing_loan_balance_kes", 219968) == "KES 219,968 still owed on existing loans"
    )
    assert (
        describe("deposits_change_6m_kes", -5000)
        == "savings fell by KES 5,000 in the last 6 months"
    )


def test_every_feature_has_text() -> None:
    for name in TABULAR_FEATURES:
        assert describe(name, 1.0), name
    assert "rp_late_count_6m" in REASON_TEXT


def test_reason_codes_pick_the_strongest_risk_raising_features() -> None:
    names = TABULAR_FEATURES
    values = np.zeros(len(names))
    contributions = np.zeros(len(names))
    for name, value, contribution in (
        ("rp_late_count_6m", 3, 0.9),
        ("loan_to_savings", 4.2, 0.5),
        ("bureau_listed", 0, 0.7),  # no text for an absent flag: skipped
        ("rp_missed_count_12m", 2, 0.2),
        ("tenure_months", 5, 0.1),
        ("mm_betting_share_30d", 0.3, 0.05),
        ("deposits_kes", 90_000, -1.5),  # lowers risk: never a reason
    ):
        values[names.index(name)] = value
        contributions[names.index(name)] = contribution
    reasons = reason_codes(contributions, values, limit=4)
    assert [r.code for r in reasons] == [
        "rp_late_count_6m",
        "loan_to_savings",
        "rp_missed_count_12m",
        "tenure_months",
    ]
    assert reasons[1].description == "loan is 4.2 times your savings"
    assert reasons[0].contribution == 0.9
    assert reason_codes(-np.abs(contributions), values) == []
