"""Drift alerts: when to raise one (at most once per window per subject) and the DriftAlert event.

Re-alerting on every decision while a feature stays shifted would flood `drift.alerts` (and any
retraining it triggers), so a subject that alerted stays quiet until a whole new window of
decisions has passed; a subject that recovers below the threshold is re-armed at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.common.envelope import wrap
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope

ALERT_NAMESPACE = uuid.UUID("5f0c6a3e-1b7d-4f6e-9a7c-2d8e4b1a9c30")


@dataclass
class AlertGate:
    """Decides whether a PSI above the threshold becomes an alert now."""

    threshold: float
    cooldown: int  # decisions to wait after an alert before the same subject may alert again
    _last: dict[str, int] = field(default_factory=dict)  # subject -> decision count at alert

    def should_alert(self, subject: str, psi: float, seen: int) -> bool:
        if psi <= self.threshold:
            self._last.pop(subject, None)  # recovered: the next excursion alerts again
            return False
        last = self._last.get(subject)
        if last is not None and seen - last < self.cooldown:
            return False
        self._last[subject] = seen
        return True


def alert_id(model_version: str, subject: str, seen: int) -> str:
    """Deterministic: a replayed stream raises alerts with the same ids (idempotent consumers)."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{model_version}/{subject}/{seen}"))


def build_alert(
    *,
    model_version: str,
    subject: str,
    psi: float,
    threshold: float,
    window_start: datetime,
    window_end: datetime,
    window_size: int,
    seen: int,
    raised_at: datetime | None = None,
) -> DriftAlert:
    alert = DriftAlert(
        alert_id=alert_id(model_version, subject, seen),
        model_version=model_version,
        subject=subject,
        psi=psi,
        threshold=threshold,
        window_size=window_size,
    )
    alert.window_start.FromDatetime(window_start)
    alert.window_end.FromDatetime(window_end)
    alert.raised_at.FromDatetime(raised_at or datetime.now(UTC))
    return alert


def alert_envelope(alert: DriftAlert, producer: str) -> EventEnvelope:
    """The shared envelope, keyed by subject, with the alert id as event id."""
    return wrap(alert, producer=producer, subject=alert.subject, event_id=alert.alert_id)
