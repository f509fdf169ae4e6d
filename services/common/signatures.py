"""The mobile-money webhook signature: HMAC-SHA256 over the timestamp and the raw body.

The contract between the provider (played by the simulator) and the gateway, like the protos:
``X-Alama-Timestamp: <unix seconds>`` and ``X-Alama-Signature: sha256=<hex digest>`` where the
digest is HMAC-SHA256(secret, ``<timestamp>.<body>``). Binding the timestamp into the MAC stops a
captured body from being replayed later under a fresh timestamp.

Each SACCO (tenant) has its own webhook secret: ``X-Alama-Tenant: <tenant>`` names whose members
a delivery is about, and only that tenant's secret verifies it, so a delivery cannot be moved to
another tenant. Without the header a delivery is the gateway's own ``webhook_tenant``'s.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Alama-Timestamp"
SIGNATURE_HEADER = "X-Alama-Signature"
TENANT_HEADER = "X-Alama-Tenant"
SCHEME = "sha256="


def webhook_signature(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The header value a sender puts in ``X-Alama-Signature``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return SCHEME + digest


def signature_matches(secret: str | bytes, timestamp: str, body: bytes, header: str) -> bool:
    """Constant-time check of a received signature header."""
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), header.strip())
