"""Prometheus metrics of the retrainer: runs by trigger and result, alerts received, the
labelled live applications it can learn from, and when the last challenger was registered."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS = Counter("alama_retraining_runs_total", "Retraining runs, by trigger", ["trigger", "status"])
ALERTS = Counter("alama_retraining_alerts_total", "Alerts that may trigger retraining", ["kind"])
LABELLED = Gauge(
    "alama_retraining_labelled_live_rows", "Live applications with a known outcome, kept"
)
LAST_CHALLENGER = Gauge(
    "alama_retraining_last_challenger_timestamp_seconds",
    "When the last challenger was registered (Unix time)",
)
RUN_SECONDS = Gauge("alama_retraining_last_run_seconds", "How long the last run took")
