"""Prometheus metrics of the outcomes service: outcomes published, and live performance per
tenant, bundle and month of application on the loans that matured (AUC, KS and ECE with their
95 % bootstrap bounds, default rate per band), beside the AUC and ECE each bundle was trained to.
The alert rules (observability/alerts.yml) compare the two."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTCOMES = Counter(
    "alama_outcomes_published_total", "Loan outcomes published, by result", ["tenant", "result"]
)
_LABELS = ["tenant", "model_version", "month"]
MATURED = Gauge("alama_live_matured_loans", "Loans whose outcome is known", _LABELS)
DEFAULT_RATE = Gauge("alama_live_default_rate", "Share of matured loans that defaulted", _LABELS)
AUC = Gauge("alama_live_auc", "AUC on matured loans", [*_LABELS, "bound"])
KS = Gauge("alama_live_ks", "KS on matured loans", [*_LABELS, "bound"])
ECE = Gauge("alama_live_ece", "Expected calibration error on matured loans", [*_LABELS, "bound"])
BAND_DEFAULT_RATE = Gauge(
    "alama_live_band_default_rate",
    "Share of a band's matured loans that defaulted (the model's band)",
    [*_LABELS, "band"],
)
REFERENCE_AUC = Gauge(
    "alama_model_reference_auc", "The bundle's test AUC when it was trained", ["model_version"]
)
REFERENCE_ECE = Gauge(
    "alama_model_reference_ece", "The bundle's test ECE when it was trained", ["model_version"]
)
DECLINED_UNOBSERVED = Gauge(
    "alama_outcomes_declined_unobserved",
    "Declined applications with no loan: outcome never observed (reject inference)",
    ["tenant", "model_version"],
)
