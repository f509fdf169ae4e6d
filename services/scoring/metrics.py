"""Prometheus metrics of the scoring service, labelled by path (grpc or kafka)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISIONS = Counter(
    "alama_scoring_decisions_total", "Credit decisions made, by band", ["path", "band"]
)
REJECTIONS = Counter(
    "alama_scoring_rejections_total", "Applications that could not be scored", ["path", "code"]
)
SCORING_SECONDS = Histogram(
    "alama_scoring_seconds",
    "Time to score one batch: features, models, reasons",
    ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "alama_scoring_batch_size",
    "Applications per scored batch",
    ["path"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
BUNDLE_SWAPS = Counter("alama_scoring_bundle_swaps_total", "Newly promoted bundles loaded")
UNDELIVERED = Counter(
    "alama_scoring_undelivered_decisions_total",
    "Synchronous decisions whose event the broker did not accept",
)
