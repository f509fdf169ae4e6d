"""Prometheus metrics of the drift service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PSI = Gauge(
    "alama_drift_psi",
    "Population stability index of the recent window against the training reference",
    ["subject", "model_version"],
)
ALERTS = Counter("alama_drift_alerts_total", "Drift alerts published", ["subject", "model_version"])
WINDOW_FILL = Gauge(
    "alama_drift_window_fill",
    "Share of the sliding window holding decisions (0-1)",
    ["model_version"],
)
OTHER_MODEL = Counter(
    "alama_drift_other_model_decisions_total",
    "Decisions of another model than the reference's (across a promotion), not compared",
    ["model_version"],
)
