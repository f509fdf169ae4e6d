"""Prometheus metrics of the audit service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROWS_APPENDED = Counter("alama_audit_rows_appended_total", "Audit rows appended to the chain")
DUPLICATES = Counter("alama_audit_duplicates_total", "Events skipped as already audited")
FLUSH_BATCHES = Counter("alama_audit_batches_total", "Transactions that appended a batch")
ANCHORS_WRITTEN = Counter("alama_audit_anchors_total", "Chain heads anchored outside PostgreSQL")
ANCHORS_REFUSED = Counter(
    "alama_audit_anchors_refused_total",
    "Anchoring refused because the chain no longer extends the last anchor (tampering)",
)
ANCHORED_SEQ = Gauge("alama_audit_anchored_seq", "Seq of the newest anchored head")
