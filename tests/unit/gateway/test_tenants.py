"""Every credential belongs to a tenant: what it writes carries the tenant, what it reads is
filtered on it (another tenant's decision is a 404, never a 403 that confirms it exists), and
tokens are checked for audience, lifetime, rotation and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from services.common.envelope import decode
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.gateway.errors import NotAuthenticated
from services.gateway.security import decode_token, issue_token
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.conftest import Gateway, bearer

API_KEY = {"X-API-Key": "dev-partner-key"}  # the development key: tenant dev-sacco
STORED = "d-A-stored"  # the fake explanation service's decision, of tenant dev-sacco


def _claims(settings: GatewaySettings, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": "officer-1",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "t-1",
        "tenant": "sacco-a",
        "scope": "decisions:read",
    } | overrides


def _token(secret: str, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_another_tenants_decision_is_not_found_like_an_unknown_one(gateway: Gateway) -> None:
    own = await gateway.client.get(f"/v1/decisions/{STORED}", headers=API_KEY)
    assert own.status_code == 200, own.text
    other = bearer(gateway.settings, "decisions:read", "explanations:read", tenant="sacco-b")
    theirs = await gateway.client.get(f"/v1/decisions/{STORED}", headers=other)
    unknown = await gateway.client.get("/v1/decisions/d-nothing", headers=other)
    assert theirs.status_code == unknown.status_code == 404
    assert "sacco" not in theirs.text  # nothing says whose it is
    explanation = await gateway.client.get(f"/v1/decisions/{STORED}/explanation", headers=other)
    assert explanation.status_code == 404
    by_application = await gateway.client.get("/v1/applications/A-stored/decision", headers=other)
    assert by_application.status_code == 404


async def test_an_application_carries_its_callers_tenant_never_the_bodys(gateway: Gateway) -> None:
    body = {
        "application_id": "A-tenant",
        "member_id": "M-1",
        "product": "emergency",
        "amount_kes": 5_000,
        "term_months": 6,
        "tenant_id": "sacco-a",  # a body cannot choose its tenant
    }
    headers = bearer(gateway.settings, "score:write", tenant="sacco-b")
    response = await gateway.client.post("/v1/applications", json=body, headers=headers)
    assert response.status_code == 202, response.text
    (published,) = gateway.events.published
    event = decode(published.envelope.SerializeToString(), LoanApplicationSubmitted)
    assert event.payload.tenant_id == "sacco-b"
    scored = await gateway.client.post("/v1/scores", json=body, headers=headers)
    assert scored.status_code == 200, scored.text
    assert gateway.grpc.scoring.applications[-1].tenant_id == "sacco-b"


def test_tokens_need_this_audience_a_tenant_and_a_bounded_lifetime(
    settings: GatewaySettings,
) -> None:
    secret = settings.jwt_secret.get_secret_value()
    assert decode_token(settings, _token(secret, _claims(settings))).tenant == "sacco-a"
    cases = {
        "audience": _claims(settings, aud="another-api"),
        "tenant": {k: v for k, v in _claims(settings).items() if k != "tenant"},
        "longer than": _claims(settings, exp=datetime.now(UTC) + timedelta(days=30)),
        "'jti'": {k: v for k, v in _claims(settings).items() if k != "jti"},
        "'iat'": {k: v for k, v in _claims(settings).items() if k != "iat"},
    }
    for reason, claims in cases.items():
        with pytest.raises(NotAuthenticated, match=reason):
            decode_token(settings, _token(secret, claims))
    with pytest.raises(ValueError, match="at most"):
        issue_token(settings, "x", ["admin"], timedelta(days=30), tenant="sacco-a")


def test_two_keys_are_valid_during_a_rotation(settings: GatewaySettings) -> None:
    old = settings.jwt_secret.get_secret_value()
    rotated = settings.model_copy(
        update={
            "jwt_secret": SecretStr("the-new-jwt-signing-key-of-32-bytes-or-more"),
            "jwt_previous_secrets": [SecretStr(old)],
        }
    )
    signed_before = issue_token(settings, "officer-1", ["decisions:read"], tenant="sacco-a")
    assert decode_token(rotated, signed_before).subject == "officer-1"
    signed_after = issue_token(rotated, "officer-1", ["decisions:read"], tenant="sacco-a")
    assert decode_token(rotated, signed_after).subject == "officer-1"
    retired = rotated.model_copy(update={"jwt_previous_secrets": []})
    with pytest.raises(NotAuthenticated, match="signature"):
        decode_token(retired, signed_before)


async def test_a_revoked_token_is_refused_from_then_on(gateway: Gateway) -> None:
    token = issue_token(gateway.settings, "officer-1", ["decisions:read"], tenant="dev-sacco")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await gateway.client.get(f"/v1/decisions/{STORED}", headers=headers)).status_code == 200
    principal = decode_token(gateway.settings, token)
    revocation = {"token_id": principal.token_id, "expires_at": "2100-01-01T00:00:00Z"}
    not_admin = await gateway.client.post("/v1/admin/revocations", json=revocation, headers=headers)
    assert not_admin.status_code == 403
    admin = bearer(gateway.settings, "admin", tenant="dev-sacco")
    revoked = await gateway.client.post("/v1/admin/revocations", json=revocation, headers=admin)
    assert revoked.status_code == 204, revoked.text
    refused = await gateway.client.get(f"/v1/decisions/{STORED}", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.text
