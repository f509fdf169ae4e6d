"""Performance alerts for the retrainer (issue 13, items 2 and 3): a bundle whose live AUC on a
month's matured loans is more than 5 % below the AUC it was trained to (its held-out AUC, from its
metrics.json, the same reference the gauges and the Prometheus rule use), or whose ECE exceeds
0.02, gets one `ModelPerformanceAlert` on `model.performance_alerts` per (bundle, month, metric).

Judged per bundle and month with every tenant pooled, since the alert is about the model (the
message names no tenant) and only a pooled month reaches the minimum of matured loans early; the
per-tenant view stays in the gauges and the alert rule. Unlike the gate, which must vouch for a
challenger before it decides anyone's loan, an alert needs evidence: for AUC the whole bootstrap
95 % interval below the bar; for ECE a value above 0.02 that no calibrated model would show on
as many loans 95 % of the time. On a few hundred loans ECE's sampling noise alone is about 0.02
(a perfectly calibrated model's point estimate passes it in most months), and an alert answered
by a retraining costs minutes of CPU and a new challenger, so noise must not raise one. An alert
is recorded in the store before it is published and its id is derived from its key, so a breach
that lasts is alerted once, and a republish after a crash is recognised downstream.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from services.common.envelope import wrap
from services.common.model_metrics import expected_calibration_error
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.models_pb2 import ModelPerformanceAlert
from services.outcomes.live import month_of
from services.outcomes.metrics import PERFORMANCE_ALERTS
from services.outcomes.performance import SEED, _interval
from services.outcomes.store import OutcomeRow, OutcomesStore, PerformanceAlertRow

AUC_DROP = "auc_drop"
ECE = "ece"
ALERT_NAMESPACE = uuid.UUID("0b8f5a52-3c1e-4f7a-9d2b-6e4c1a7f3d15")

Reference = Callable[[str], tuple[float | None, float | None]]


@dataclass(frozen=True)
class AlertRule:
    min_loans: int = 200
    auc_drop: float = 0.05  # share of the reference AUC
    ece_max: float = 0.02


@dataclass(frozen=True)
class Breach:
    model_version: str
    month: str
    metric: str
    value: float
    reference: float  # the bundle's held-out AUC or ECE (NaN when its metrics.json is missing)
    threshold: float
    loans: int


def breaches(rows: Sequence[OutcomeRow], reference: Reference, rule: AlertRule) -> list[Breach]:
    """Every (bundle, month, metric) whose matured loans breach the rule, in key order."""
    groups: dict[tuple[str, str], list[OutcomeRow]] = defaultdict(list)
    for row in rows:
        groups[(row.model_version, month_of(row))].append(row)
    found: list[Breach] = []
    for (version, month), group in sorted(groups.items()):
        if len(group) < rule.min_loans:
            continue
        y = np.array([r.defaulted for r in group], dtype=np.float64)
        p = np.array([r.probability_of_default for r in group], dtype=np.float64)
        ref_auc, ref_ece = reference(version)
        rng = np.random.default_rng(SEED)
        if ref_auc is not None and 0 < y.sum() < len(y):
            auc = _interval(y, p, "auc", rng)
            bar = (1 - rule.auc_drop) * ref_auc
            if auc.value is not None and auc.high is not None and auc.high < bar:
                found.append(Breach(version, month, AUC_DROP, auc.value, ref_auc, bar, len(group)))
        ece = expected_calibration_error(y, p)
        if ece > max(rule.ece_max, calibrated_ece(p, rng)):
            ref = math.nan if ref_ece is None else ref_ece
            found.append(Breach(version, month, ECE, ece, ref, rule.ece_max, len(group)))
    return found


def calibrated_ece(p: np.ndarray, rng: np.random.Generator, samples: int = 200) -> float:
    """The ECE a perfectly calibrated model shows on these loans 95 % of the time: outcomes
    drawn from its own PDs. (A bootstrap interval of ECE cannot say this: resampling only adds
    noise, so even a calibrated model's interval lies above its point estimate.)"""
    draws = [
        expected_calibration_error((rng.random(len(p)) < p).astype(float), p)
        for _ in range(samples)
    ]
    return float(np.percentile(draws, 95))


def alert_id(model_version: str, month: str, metric: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{model_version}\x1f{month}\x1f{metric}"))


def alert_event(row: PerformanceAlertRow) -> ModelPerformanceAlert:
    alert = ModelPerformanceAlert(
        alert_id=row.alert_id,
        model_version=row.model_version,
        metric=row.metric,
        value=row.value,
        reference=row.reference,
        threshold=row.threshold,
        month=row.month,
        loans=row.loans,
    )
    alert.raised_at.FromDatetime(row.raised_at)
    return alert


async def raise_alerts(
    store: OutcomesStore,
    reference: Reference,
    rule: AlertRule,
    send: Callable[[str, EventEnvelope], Awaitable[None]],
    topic: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[PerformanceAlertRow]:
    """Record the breaches not alerted yet, then publish every recorded and unpublished alert
    (acknowledged) and mark it. Returns what was published."""
    raised_at = now()
    await store.add_performance_alerts(
        [
            PerformanceAlertRow(
                model_version=b.model_version,
                month=b.month,
                metric=b.metric,
                alert_id=alert_id(b.model_version, b.month, b.metric),
                value=b.value,
                reference=b.reference,
                threshold=b.threshold,
                loans=b.loans,
                raised_at=raised_at,
            )
            for b in await asyncio.to_thread(breaches, await store.matured(), reference, rule)
        ]
    )
    pending = await store.unpublished_alerts()
    for row in pending:
        envelope = wrap(
            alert_event(row), producer="outcomes", subject=row.model_version, event_id=row.alert_id
        )
        await send(topic, envelope)
        PERFORMANCE_ALERTS.labels(row.metric).inc()
    await store.mark_alerts_published([r.alert_id for r in pending])
    return pending
