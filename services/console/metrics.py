"""Prometheus metrics of the console: the queue's size and age per tenant (refreshed on a timer
from the console's store, so every replica reports the same), SLA breaches, and what officers do.
The HTTP metrics are the shared ones (`alama_http_requests_total`, by route template)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

QUEUE_OPEN = Gauge("alama_console_queue_open_items", "Review items not yet settled", ["tenant"])
QUEUE_OLDEST_SECONDS = Gauge(
    "alama_console_queue_oldest_item_seconds",
    "Age of the oldest review item not yet settled (0 when none)",
    ["tenant"],
)
QUEUE_BREACHING = Gauge(
    "alama_console_queue_sla_breaches",
    "Review items not yet settled that are older than the review SLA",
    ["tenant"],
)
REVIEW_ACTIONS = Counter(
    "alama_console_review_actions_total",
    "Officers' actions on review items: claim, release, propose, send_back, approve, decline",
    ["tenant", "action"],
)
SIGN_INS = Counter(
    "alama_console_sign_ins_total", "Sign-in attempts by result (ok, refused, locked)", ["result"]
)
SIGN_OUTS = Counter(
    "alama_console_sign_outs_total",
    "Sign-outs by how they ended: console (a password session), idp (sent on to the identity"
    " provider's sign-out), idp_open (the identity provider offers none or did not answer)",
    ["result"],
)
