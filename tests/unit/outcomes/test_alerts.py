"""Performance alerts: a month breaches when its matured loans rank more than 5 % below the
bundle's held-out AUC or price risk with an ECE above 0.02, only once enough loans matured."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.outcomes.alerts import (
    AUC_DROP,
    ECE,
    AlertRule,
    alert_event,
    alert_id,
    breaches,
)
from services.outcomes.store import OutcomeRow, PerformanceAlertRow

JUNE = datetime(2026, 6, 15, tzinfo=UTC)
JULY = datetime(2026, 7, 15, tzinfo=UTC)


def _rows(
    n: int, version: str, applied: datetime, noise: float, bias: float, seed: int
) -> list[OutcomeRow]:
    """Seeded matured loans: outcomes from a true PD, the model's PD that PD blurred by
    `noise` and shifted by `bias` on the log-odds."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.0, 1.0, n)
    defaulted = rng.random(n) < 1 / (1 + np.exp(-logit))
    predicted = 1 / (1 + np.exp(-(logit + bias + rng.normal(0, noise, n))))
    return [
        OutcomeRow(
            tenant_id=f"t{i % 2}",  # tenants pooled: the alert is about the bundle
            loan_id=f"L{seed}-{i}",
            application_id=f"a{seed}-{i}",
            decision_id=f"d{seed}-{i}",
            model_version=version,
            defaulted=bool(defaulted[i]),
            outcome_at=applied,
            max_days_late=0,
            instalments_observed=12,
            probability_of_default=float(predicted[i]),
            band=1,
            final_band=None,
            applied_at=applied,
            disbursed_at=applied,
        )
        for i in range(n)
    ]


def _reference(auc: float | None, ece: float | None = 0.008):  # type: ignore[no-untyped-def]
    return lambda _version: (auc, ece)


def test_a_sharp_model_on_a_month_raises_nothing() -> None:
    rows = _rows(20_000, "v1", JUNE, noise=0.1, bias=0.0, seed=1)
    auc = roc_auc_score([r.defaulted for r in rows], [r.probability_of_default for r in rows])
    assert breaches(rows, _reference(auc), AlertRule()) == []


def test_a_blurred_model_breaches_auc_and_a_biased_one_ece() -> None:
    rows = [
        *_rows(5_000, "v1", JUNE, noise=2.0, bias=0.0, seed=2),  # ranks badly, not biased
        *_rows(5_000, "v1", JULY, noise=0.1, bias=1.0, seed=3),  # ranks well, over-predicts
    ]
    july_rows = rows[5_000:]
    held_out = roc_auc_score(  # the bundle ranked as well as this when it was trained
        [r.defaulted for r in july_rows], [r.probability_of_default for r in july_rows]
    )
    found = breaches(rows, _reference(held_out), AlertRule())
    keys = [(b.month, b.metric) for b in found]
    assert ("2026-06", AUC_DROP) in keys and ("2026-07", ECE) in keys
    assert ("2026-07", AUC_DROP) not in keys
    june = next(b for b in found if b.metric == AUC_DROP)
    assert june.threshold == pytest.approx(0.95 * held_out) and june.value < june.threshold
    assert june.loans == 5_000 and june.reference == held_out
    july = next(b for b in found if (b.month, b.metric) == ("2026-07", ECE))
    assert july.value > 0.02 and july.threshold == 0.02 and july.reference == 0.008


def test_too_few_matured_loans_or_no_reference_auc_hold_their_alert() -> None:
    rows = _rows(150, "v1", JUNE, noise=2.0, bias=1.0, seed=4)
    assert breaches(rows, _reference(0.9), AlertRule(min_loans=200)) == []
    found = breaches(rows, _reference(None, None), AlertRule(min_loans=100))
    assert [b.metric for b in found] == [ECE]  # no held-out AUC to drop from
    assert np.isnan(found[0].reference)


def test_an_alert_id_is_its_key_so_a_republish_is_recognised() -> None:
    assert alert_id("v1", "2026-06", ECE) == alert_id("v1", "2026-06", ECE)
    assert alert_id("v1", "2026-06", ECE) != alert_id("v1", "2026-06", AUC_DROP)
    row = PerformanceAlertRow(
        "v1", "2026-06", ECE, alert_id("v1", "2026-06", ECE), 0.05, 0.01, 0.02, 300, JUNE
    )
    event = alert_event(row)
    assert (event.model_version, event.metric, event.month, event.loans) == (
        "v1",
        ECE,
        "2026-06",
        300,
    )
    assert event.raised_at.ToDatetime(tzinfo=UTC) == JUNE


def test_a_calibrated_model_on_a_few_hundred_loans_raises_nothing_on_noise() -> None:
    """At 200 matured loans a perfectly calibrated model's ECE point estimate is above 0.02 in
    most months (sampling noise alone); an alert needs the whole interval beyond the bar."""
    months = [_rows(200, "v1", JUNE, noise=0.0, bias=0.0, seed=100 + s) for s in range(12)]
    from services.common.model_metrics import expected_calibration_error

    noisy = [
        expected_calibration_error(
            np.array([r.defaulted for r in m], dtype=float),
            np.array([r.probability_of_default for r in m]),
        )
        > 0.02
        for m in months
    ]
    assert sum(noisy) >= 6  # the point estimate alone would have alerted most months
    auc = roc_auc_score(
        [r.defaulted for m in months for r in m],
        [r.probability_of_default for m in months for r in m],
    )
    assert all(breaches(m, _reference(auc), AlertRule()) == [] for m in months)
