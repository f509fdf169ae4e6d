"""Alerts fire once when PSI exceeds the threshold, never below it, and carry the window."""

from __future__ import annotations

from datetime import UTC, datetime

from services.common.envelope import decode, encode
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.drift.alerts import AlertGate, alert_envelope, build_alert


def test_gate_fires_once_per_window_above_threshold() -> None:
    gate = AlertGate(threshold=0.25, cooldown=100)
    assert gate.should_alert("score", 0.4, seen=100)
    assert not gate.should_alert("score", 0.5, seen=150)  # same window: quiet
    assert gate.should_alert("income", 0.3, seen=150)  # another subject is independent
    assert gate.should_alert("score", 0.5, seen=200)  # a whole new window later


def test_gate_does_not_fire_below_threshold_and_rearms() -> None:
    gate = AlertGate(threshold=0.25, cooldown=100)
    assert not gate.should_alert("score", 0.1, seen=100)
    assert not gate.should_alert("score", 0.25, seen=110)  # "exceeds" is strict
    assert gate.should_alert("score", 0.3, seen=120)
    assert not gate.should_alert("score", 0.05, seen=130)  # recovered
    assert gate.should_alert("score", 0.3, seen=140)  # a new excursion alerts again


def test_alert_event_carries_the_window() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    kwargs = dict(
        model_version="v1", subject="score", psi=0.4, threshold=0.25,
        window_start=start, window_end=end, window_size=1000, seen=1200,
    )  # fmt: skip
    alert = build_alert(**kwargs)  # type: ignore[arg-type]
    assert alert.alert_id == build_alert(**kwargs).alert_id  # type: ignore[arg-type]
    assert alert.window_start.ToDatetime(tzinfo=UTC) == start
    assert alert.window_end.ToDatetime(tzinfo=UTC) == end
    assert (alert.subject, alert.window_size, alert.model_version) == ("score", 1000, "v1")
    event = decode(encode(alert_envelope(alert, "drift")), DriftAlert)
    assert event.payload == alert
    assert event.event_id == alert.alert_id
    assert event.envelope.subject == "score"
