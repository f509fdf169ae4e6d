"""Prometheus metrics of the explanation service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EXPLANATIONS = Counter(
    "alama_explanation_explanations_total",
    "Explanations made, by path (kafka or on_demand)",
    ["path"],
)
EXPLAIN_SECONDS = Histogram(
    "alama_explanation_explain_seconds",
    "Time to explain one batch of decisions: TreeSHAP, reasons, attention",
    ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ON_DEMAND = Counter(
    "alama_explanation_on_demand_total",
    "Stored decisions explained on demand because GetExplanation came before the event",
)
GRPC_REQUESTS = Counter(
    "alama_explanation_grpc_requests_total",
    "ExplanationService calls, by method and status code",
    ["method", "code"],
)
BUNDLE_LOADS = Counter(
    "alama_explanation_bundle_loads_total", "Model bundles loaded into the explainer's cache"
)
BUNDLE_DOWNLOADS = Counter(
    "alama_explanation_bundle_fetches_total",
    "Bundles found through the model registry because the bundle root lacked them",
)
