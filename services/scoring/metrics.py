"""Prometheus metrics of the scoring service, labelled by path (grpc or kafka) where it applies."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
BUNDLE_LOAD_FAILURES = Counter(
    "alama_scoring_bundle_load_failures_total",
    "New bundles that could not be loaded (the one before keeps serving), by role",
    ["role"],
)
REGISTRY_ERRORS = Counter(
    "alama_scoring_registry_errors_total",
    "Checks of the model registry's aliases that failed (the models loaded keep serving)",
)
REGISTRY_LISTENING = Gauge(
    "alama_scoring_registry_listening",
    "1 while registry changes are read from their topic (else only polling follows them)",
)
SERVED_BUNDLE = Gauge(
    "alama_scoring_served_bundle",
    "1 for the bundle serving each role (champion decides, challenger runs in shadow)",
    ["role", "version"],
)
SHADOW_DECISIONS = Counter(
    "alama_scoring_shadow_decisions_total",
    "The challenger's decisions published to the shadow topic",
)
SHADOW_DROPPED = Counter(
    "alama_scoring_shadow_dropped_total",
    "Decisions the challenger did not shadow, by reason (queue_full: shed under load)",
    ["reason"],
)
SHADOW_BANDS = Counter(
    "alama_scoring_shadow_bands_total",
    "Shadowed decisions by the champion's band and the challenger's (agreement on the diagonal)",
    ["champion_band", "challenger_band"],
)
ALREADY_DECIDED = Counter(
    "alama_scoring_already_decided_applications_total",
    "Applications on loan.applications that scoring had decided synchronously and recorded"
    " there: not decided again by the consumer",
)
UNDELIVERED = Counter(
    "alama_scoring_undelivered_decisions_total",
    "Synchronous decisions whose event the broker did not accept",
)
LEDGER_SETTLE_FAILURES = Counter(
    "alama_scoring_ledger_settle_failures_total",
    "Rounds of published decisions whose whole copies the ledger could not let go (delete, or"
    " shorten to the retry window); they stay as long as the standing entries",
)
