"""JWTs, API keys, webhook signatures and pseudonyms, without an app."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import SecretStr

from services.common.signatures import webhook_signature
from services.gateway.errors import BadSignature, NotAuthenticated, StaleDelivery
from services.gateway.security import (
    ADMIN,
    DECISIONS_READ,
    SCORE_WRITE,
    authenticate_api_key,
    decode_token,
    hash_api_key,
    issue_token,
    normalise_phone,
    pseudonymise,
    replay_key,
    verify_webhook,
)
from services.gateway.settings import (
    DEV_PARTNER_KEY_SALT,
    DEV_PARTNER_KEY_SHA256,
    ApiKey,
    GatewaySettings,
)


def test_a_fresh_token_decodes_to_its_subject_and_scopes(settings: GatewaySettings) -> None:
    token = issue_token(settings, "officer-1", [SCORE_WRITE, DECISIONS_READ], tenant="sacco-a")
    principal = decode_token(settings, token)
    assert principal.subject == "officer-1"
    assert principal.scopes == {SCORE_WRITE, DECISIONS_READ}
    assert principal.allows(SCORE_WRITE) and not principal.allows("explanations:read")
    assert principal.missing([SCORE_WRITE, "explanations:read"]) == ["explanations:read"]


def test_admin_implies_every_scope(settings: GatewaySettings) -> None:
    principal = decode_token(settings, issue_token(settings, "root", [ADMIN], tenant="sacco-a"))
    assert principal.missing([SCORE_WRITE, DECISIONS_READ, "explanations:read"]) == []


def test_an_expired_token_is_rejected(settings: GatewaySettings) -> None:
    token = issue_token(
        settings,
        "officer-1",
        [SCORE_WRITE],
        tenant="sacco-a",
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    with pytest.raises(NotAuthenticated, match="expired"):
        decode_token(settings, token)


def test_a_token_from_another_issuer_is_rejected(settings: GatewaySettings) -> None:
    other = settings.model_copy(update={"jwt_issuer": "someone-else"})
    with pytest.raises(NotAuthenticated, match="not issued by this gateway"):
        decode_token(settings, issue_token(other, "officer-1", [SCORE_WRITE], tenant="sacco-a"))


def test_a_token_signed_with_another_secret_is_rejected(settings: GatewaySettings) -> None:
    other = settings.model_copy(
        update={"jwt_secret": SecretStr("another-secret-that-is-32-bytes-long!")}
    )
    with pytest.raises(NotAuthenticated, match="signature"):
        decode_token(settings, issue_token(other, "officer-1", [SCORE_WRITE], tenant="sacco-a"))


def test_tokens_without_expiry_or_with_another_algorithm_are_rejected(
    settings: GatewaySettings,
) -> None:
    secret = settings.jwt_secret.get_secret_value()
    no_exp = jwt.encode({"sub": "x", "iss": settings.jwt_issuer}, secret, algorithm="HS256")
    with pytest.raises(NotAuthenticated, match="'exp'"):
        decode_token(settings, no_exp)
    unsigned = jwt.encode(
        {"sub": "x", "iss": settings.jwt_issuer, "exp": datetime.now(UTC) + timedelta(hours=1)},
        None,
        algorithm="none",
    )
    with pytest.raises(NotAuthenticated):
        decode_token(settings, unsigned)
    with pytest.raises(NotAuthenticated, match="malformed"):
        decode_token(settings, "not.a.jwt")


def test_api_keys_are_matched_by_their_sha256(settings: GatewaySettings) -> None:
    assert hash_api_key("dev-partner-key", DEV_PARTNER_KEY_SALT) == DEV_PARTNER_KEY_SHA256
    assert hashlib.sha256(b"dev-partner-key").hexdigest() not in settings.model_dump_json()
    assert "dev-partner-key" not in settings.model_dump_json()  # only the salted hash is there
    principal = authenticate_api_key(settings, "dev-partner-key")
    assert principal.subject == "api-key:dev-partner" and principal.tenant == "dev-sacco"
    assert principal.scopes == {"score:write", "decisions:read", "explanations:read"}
    with pytest.raises(NotAuthenticated):
        authenticate_api_key(settings, "dev-partner-key ")
    custom = settings.model_copy(
        update={
            "api_keys": [
                ApiKey(
                    name="bank",
                    tenant="bank-1",
                    salt="00" * 16,
                    sha256=hashlib.sha256(bytes(16) + b"s3cret").hexdigest(),
                    scopes=[],
                )
            ]
        }
    )
    assert authenticate_api_key(custom, "s3cret").scopes == frozenset()
    assert authenticate_api_key(custom, "s3cret").tenant == "bank-1"
    with pytest.raises(NotAuthenticated):
        authenticate_api_key(custom, "dev-partner-key")


def test_webhook_signature_then_freshness(settings: GatewaySettings) -> None:
    secret = settings.webhook_secret.get_secret_value()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ts = int(now.timestamp())
    body = b'{"transactions": []}'
    good = webhook_signature(secret, ts, body)
    assert verify_webhook(settings, timestamp=str(ts), signature=good, body=body, now=now) == ts
    with pytest.raises(BadSignature, match="lacks"):
        verify_webhook(settings, timestamp=None, signature=good, body=body, now=now)
    with pytest.raises(BadSignature, match="does not match"):
        verify_webhook(settings, timestamp=str(ts), signature=good, body=body + b" ", now=now)
    with pytest.raises(BadSignature, match="does not match"):
        wrong = webhook_signature("another-secret", ts, body)
        verify_webhook(settings, timestamp=str(ts), signature=wrong, body=body, now=now)
    old = ts - settings.webhook_tolerance_seconds - 1
    with pytest.raises(StaleDelivery, match="old"):
        signed = webhook_signature(secret, old, body)
        verify_webhook(settings, timestamp=str(old), signature=signed, body=body, now=now)
    future = ts + settings.webhook_tolerance_seconds + 1
    with pytest.raises(StaleDelivery, match="future"):
        signed = webhook_signature(secret, future, body)
        verify_webhook(settings, timestamp=str(future), signature=signed, body=body, now=now)
    # a stale delivery with a bad signature is a 401, not a 409: the signature is checked first
    with pytest.raises(BadSignature):
        verify_webhook(settings, timestamp=str(old), signature=good, body=body, now=now)
    assert (
        replay_key(good)
        == replay_key(f" {good} ")
        != replay_key(webhook_signature(secret, ts + 1, body))
    )


@pytest.mark.parametrize(
    "raw",
    ["0712345678", "+254712345678", "254712345678", "712345678", "0712 345-678", "(0712) 345678"],
)
def test_kenyan_numbers_normalise_to_one_form(raw: str) -> None:
    assert normalise_phone(raw) == "254712345678"


def test_safaricom_01_numbers_and_foreign_numbers(settings: GatewaySettings) -> None:
    assert normalise_phone("0110123456") == normalise_phone("+254110123456") == "254110123456"
    assert normalise_phone("+256772123456") == "256772123456"  # Uganda stays as it is
    assert normalise_phone("00254712345678") == "254712345678"
    for bad in ["", "phone", "12", "+2547123456789012345"]:
        with pytest.raises(ValueError):
            normalise_phone(bad)


def test_pseudonyms_are_keyed_stable_and_hide_the_value(settings: GatewaySettings) -> None:
    digest = pseudonymise(settings, "254712345678")
    assert digest == pseudonymise(settings, "254712345678")
    assert len(digest) == 64 and "254712345678" not in digest
    other = settings.model_copy(update={"pseudonym_key": SecretStr("another-key")})
    assert pseudonymise(other, "254712345678") != digest
    assert pseudonymise(settings, "254712345679") != digest


def test_webhook_headers_must_be_ascii(settings: GatewaySettings) -> None:
    secret = settings.webhook_secret.get_secret_value()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    body = b'{"transactions": []}'
    # the same instant in Arabic-Indic digits, which int() reads and the signer signed
    digits = str(int(now.timestamp())).translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
    signed = webhook_signature(secret, digits, body)
    with pytest.raises(BadSignature, match="ASCII"):
        verify_webhook(settings, timestamp=digits, signature=signed, body=body, now=now)
    with pytest.raises(BadSignature, match="ASCII"):  # compare_digest raised TypeError here
        verify_webhook(settings, timestamp="1", signature="sha256=\u00e9", body=body, now=now)


def test_a_verified_token_is_remembered_until_it_expires_and_only_under_its_settings(
    settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from services.gateway import security

    verified = security.VerifiedTokens(settings, size=2)
    calls: list[str] = []
    real = security.decode_token

    def counting(s: GatewaySettings, token: str) -> security.Principal:
        calls.append(token)
        return real(s, token)

    monkeypatch.setattr(security, "decode_token", counting)
    token = issue_token(
        settings, "officer-1", [SCORE_WRITE], timedelta(seconds=2), tenant="sacco-a"
    )
    first = verified.principal(settings, token)
    assert verified.principal(settings, token) == first and calls == [token]  # checked once
    time.sleep(2.1)  # past its exp it is checked again, and refused as expired
    with pytest.raises(NotAuthenticated, match="expired"):
        verified.principal(settings, token)
    assert calls == [token, token]
    token = issue_token(settings, "officer-1", [SCORE_WRITE], tenant="sacco-a")
    verified.principal(settings, token)
    # another configuration (a rotated secret) verifies for itself: nothing carries over
    other = settings.model_copy(
        update={"jwt_secret": SecretStr("another-secret-of-at-least-32-bytes")}
    )
    with pytest.raises(NotAuthenticated, match="signature"):
        verified.principal(other, token)
    # a token that does not verify is refused every time, never remembered
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            verified.principal(settings, forged)
    # at most `size` are held: the least recently used goes first
    tokens = [
        issue_token(settings, f"officer-{i}", [SCORE_WRITE], tenant="sacco-a") for i in range(3)
    ]
    for t in tokens:
        verified.principal(settings, t)
    assert list(verified._principals) == tokens[1:]
