"""Prometheus metrics of the audit service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_APPENDED = Counter("alama_audit_rows_appended_total", "Audit rows appended to the chain")
DUPLICATES = Counter("alama_audit_duplicates_total", "Events skipped as already audited")
FLUSH_BATCHES = Counter("alama_audit_batches_total", "Transactions that appended a batch")
ANCHORS_WRITTEN = Counter("alama_audit_anchors_total", "Chain heads anchored outside PostgreSQL")
ANCHORS_REFUSED = Counter(
    "alama_audit_anchors_refused_total",
    "Anchoring refused because the chain no longer extends the last anchor (tampering)",
)
ANCHORED_SEQ = Gauge("alama_audit_anchored_seq", "Seq of the newest anchored head")

# The trail contract (GetTrail): what callers asked, and how much of the chain that verified.
GRPC_REQUESTS = Counter(
    "alama_audit_grpc_requests_total", "Audit gRPC calls by method and status", ["method", "code"]
)
TRAIL_SECONDS = Histogram(
    "alama_audit_trail_seconds",
    "Time to read and verify one application's trail",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TRAIL_ROWS_VERIFIED = Counter(
    "alama_audit_trail_rows_verified_total",
    "Chain rows verified on behalf of trail requests (beyond the application's own records)",
)
TRAIL_BROKEN = Counter(
    "alama_audit_trail_broken_total", "Trails answered with a record or the chain broken"
)
TRAIL_VERIFIED_SEQ = Gauge(
    "alama_audit_trail_verified_seq",
    "Seq through which this server has verified the chain from its start",
)
