"""Fuzz every operation of the published OpenAPI schema: bad input is never a 5xx.

The schema is read where it is published, the operator port's app; the calls go to the public app.

The app runs on Python-level fakes (schemathesis drives it from its own event loop thread) with
valid admin credentials, and webhook bodies are signed, so fuzzed input reaches validation and
the routes behind authentication rather than stopping at 401.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from services.common.signatures import webhook_signature
from services.gateway.app import create_app, create_operator_app
from services.gateway.clients import Backends
from services.gateway.security import issue_token
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.fakes import (
    FakeErasureStatuses,
    FakeEvents,
    FakeExplanations,
    FakeReplayStore,
    FakeRevocations,
    FakeScoring,
    fake_members,
)

SECRET = "fuzz-webhook-secret"
GATEWAY = GatewaySettings(
    jwt_secret=SecretStr("fuzz-jwt-secret-that-is-at-least-32-bytes"),
    webhook_secret=SecretStr(SECRET),
    max_call_applications=20,
    max_webhook_transactions=20,
)
EVENTS = FakeEvents()
app = create_app(
    GATEWAY,
    backends=Backends(
        scoring=FakeScoring(),
        explanations=FakeExplanations(),
        events=EVENTS,
        replay=FakeReplayStore(),
        revocations=FakeRevocations(),
        members=fake_members()[0],
        erasures=FakeErasureStatuses(),
        exports=FakeErasureStatuses(),
        members_key=b"fuzz-member-pseudonym-key-of-32-bytes",
    ),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_operator_app(app))
schema.app = app
TOKEN = issue_token(GATEWAY, "fuzzer", ["admin"], tenant="fuzz-sacco")
RESPONSES: list[int] = []


def _webhook_call(case: Any) -> dict[str, Any]:
    """Sign exactly the bytes that will be sent."""
    body = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) else {}
    raw = json.dumps(body).encode()
    ts = int(time.time())
    return {
        "headers": {
            "X-Alama-Timestamp": str(ts),
            "X-Alama-Signature": webhook_signature(SECRET, ts, raw),
            "Content-Type": "application/json",
        },
        "json": None,
        "data": raw,
    }


#: `make fuzz` runs 1,000 examples per route (the acceptance bar); `make test` a quick 8.
EXAMPLES = int(os.environ.get("ALAMA_FUZZ_EXAMPLES", "8"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_gateway_fail(case: Any) -> None:
    if case.path == "/v1/webhooks/mobile-money":
        response = case.call(**_webhook_call(case))
    else:
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    RESPONSES.append(response.status_code)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
