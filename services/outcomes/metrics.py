"""Prometheus metrics of the outcomes service: outcomes published, and live performance per
tenant, bundle and month of application on the loans that matured (AUC, KS and ECE with their
95 % bootstrap bounds, default rate per band), beside the AUC and ECE each bundle was trained to.
The alert rules (observability/alerts.yml) compare the two. And the challenger in shadow beside
its champion, per tenant: band agreement, PSI of the PDs, AUC and ECE of each on matured loans."""

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

_SHADOW = ["tenant", "champion", "challenger"]
SHADOW_PAIRS = Gauge(
    "alama_shadow_pairs", "Applications both the champion and the challenger scored", _SHADOW
)
SHADOW_MATURED = Gauge(
    "alama_shadow_matured_loans",
    "Matured loans both the champion and the challenger scored",
    _SHADOW,
)
SHADOW_AGREEMENT = Gauge(
    "alama_shadow_agreement", "Share of applications the two models put in the same band", _SHADOW
)
SHADOW_PSI = Gauge(
    "alama_shadow_psi", "PSI of the challenger's PDs against the champion's deciles", _SHADOW
)
SHADOW_AUC = Gauge(
    "alama_shadow_auc", "AUC on the matured loans both models scored", [*_SHADOW, "model"]
)
SHADOW_ECE = Gauge(
    "alama_shadow_ece", "ECE on the matured loans both models scored", [*_SHADOW, "model"]
)
PERFORMANCE_ALERTS = Counter(
    "alama_outcomes_performance_alerts_total",
    "Performance alerts published for the retrainer, by metric",
    ["metric"],
)
