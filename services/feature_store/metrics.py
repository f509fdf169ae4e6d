"""Prometheus metrics of the feature_store service (events consumed: telemetry.EVENTS_CONSUMED)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
OFFLINE_WRITES = Counter(
    "alama_feature_store_offline_writes_total",
    "Writes of pushed rows to the offline store by push source and outcome (ok, failed);"
    " a failed write's rows wait in the members' state and are written again",
    ["push_source", "outcome"],
)
OFFLINE_ROWS = Counter(
    "alama_feature_store_offline_rows_total",
    "Rows sent to the offline store by push source and outcome (written, already_written: a"
    " replayed or retried row the offline store had)",
    ["push_source", "outcome"],
)
OFFLINE_WRITE_SECONDS = Histogram(
    "alama_feature_store_offline_write_seconds",
    "Time of one write of pushed rows to the offline store",
    ["push_source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OFFLINE_ROWS_OWED = Gauge(
    "alama_feature_store_offline_rows_owed",
    "Rows pushed online and not yet written offline (after a failed write), as of the last"
    " retry round",
    ["push_source"],
)
