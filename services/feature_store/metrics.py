"""Prometheus metrics of the feature_store service (events consumed: telemetry.EVENTS_CONSUMED)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DUPLICATES = Counter(
    "alama_feature_store_duplicates_total",
    "Events skipped because their transaction or repayment id was already in the member's state",
    ["topic"],
)
PUSHES = Counter(
    "alama_feature_store_pushes_total",
    "Feast pushes by push source and outcome (ok, failed)",
    ["push_source", "outcome"],
)
PUSH_SECONDS = Histogram(
    "alama_feature_store_push_seconds",
    "Time of one Feast push (a DataFrame of members) to the stores",
    ["push_source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MEMBERS_UPDATED = Counter(
    "alama_feature_store_members_updated_total",
    "Member feature rows pushed to Feast",
    ["push_source"],
)
