"""Credentials and keyed hashes: JWTs, API keys, webhook signatures, pseudonymisation.

Pure functions over the settings, so they are tested without an app; deps.py wires them into
FastAPI's security dependencies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from services.common.signatures import signature_matches
from services.gateway.errors import BadSignature, NotAuthenticated, StaleDelivery
from services.gateway.settings import TENANT_PATTERN, GatewaySettings

ALGORITHM = "HS256"
SCORE_WRITE = "score:write"
DECISIONS_READ = "decisions:read"
EXPLANATIONS_READ = "explanations:read"
ADMIN = "admin"
SCOPES: dict[str, str] = {
    SCORE_WRITE: "Score loan applications, synchronously or through Kafka",
    DECISIONS_READ: "Read credit decisions",
    EXPLANATIONS_READ: "Read decision explanations",
    ADMIN: "Every scope",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling (JWT subject or API key name), for which tenant, and what they may do.
    Everything a principal writes carries its tenant; everything it reads is filtered on it."""

    subject: str
    scopes: frozenset[str]
    method: str  # "jwt" or "api_key"
    tenant: str
    token_id: str | None = None  # a JWT's `jti`, for the revocation list
    expires_at: float | None = None  # a JWT's `exp`, seconds since the epoch

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def missing(self, required: Iterable[str]) -> list[str]:
        return [s for s in required if not self.allows(s)]


def issue_token(
    settings: GatewaySettings,
    subject: str,
    scopes: Iterable[str],
    ttl: timedelta = timedelta(hours=1),
    *,
    tenant: str,
    now: datetime | None = None,
) -> str:
    """A signed HS256 bearer token for `subject` acting for `tenant`, with a space-separated
    `scope` claim, this gateway's audience and a unique `jti` (so it can be revoked)."""
    if ttl > timedelta(minutes=settings.jwt_max_lifetime_minutes):
        raise ValueError(
            f"a token may live at most {settings.jwt_max_lifetime_minutes} minutes, not {ttl}"
        )
    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise ValueError(f"tenant {tenant!r} must match {TENANT_PATTERN}")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
        "tenant": tenant,
        "scope": " ".join(dict.fromkeys(scopes)),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def _verified_claims(settings: GatewaySettings, token: str) -> dict[str, Any]:
    """The claims under the current key or, during a rotation, a previous one."""
    keys = [settings.jwt_secret, *settings.jwt_previous_secrets]
    for i, key in enumerate(keys):
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.get_secret_value(),
                algorithms=[ALGORITHM],
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
            return claims
        except jwt.InvalidSignatureError:
            if i == len(keys) - 1:
                raise
    raise jwt.InvalidSignatureError("no key")  # unreachable: keys holds jwt_secret


def decode_token(settings: GatewaySettings, token: str) -> Principal:
    """The principal of a valid token; `NotAuthenticated` saying why for any other."""
    try:
        claims = _verified_claims(settings, token)
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("the bearer token has expired") from exc
    except jwt.InvalidIssuerError as exc:
        raise NotAuthenticated("the bearer token was not issued by this gateway") from exc
    except jwt.InvalidAudienceError as exc:
        raise NotAuthenticated("the bearer token is not meant for this API (audience)") from exc
    except jwt.InvalidSignatureError as exc:
        raise NotAuthenticated("the bearer token's signature does not verify") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise NotAuthenticated(f"the bearer token lacks the {exc.claim!r} claim") from exc
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("the bearer token is malformed or invalid") from exc
    scope, tenant = claims.get("scope", ""), claims.get("tenant")
    if not isinstance(scope, str) or not isinstance(claims["sub"], str):
        raise NotAuthenticated("the bearer token's scope or subject claim is malformed")
    if not isinstance(tenant, str) or not re.fullmatch(TENANT_PATTERN, tenant):
        raise NotAuthenticated("the bearer token names no valid tenant")
    lifetime = float(claims["exp"]) - float(claims["iat"])
    if lifetime > settings.jwt_max_lifetime_minutes * 60:
        raise NotAuthenticated(
            f"the bearer token lives longer than the {settings.jwt_max_lifetime_minutes}"
            " minutes this gateway accepts"
        )
    return Principal(
        subject=claims["sub"],
        scopes=frozenset(scope.split()),
        method="jwt",
        tenant=tenant,
        token_id=str(claims["jti"]),
        expires_at=float(claims["exp"]),
    )


class VerifiedTokens:
    """The bearer tokens this process has verified, each until its `exp`: a client sends the
    same token with every request, and checking its signature and claims again each time was a
    third of the gateway's own CPU per request (in process, on fake backends). Only a token that
    verified is kept, under the settings that verified it; revocation is still asked on every
    request (deps.authenticate), and the oldest entry goes once `size` are held."""

    def __init__(self, settings: GatewaySettings, size: int = 10_000) -> None:
        self.settings = settings
        self.size = size
        self._principals: OrderedDict[str, Principal] = OrderedDict()

    def principal(self, settings: GatewaySettings, token: str) -> Principal:
        """`decode_token(settings, token)`, from memory while the token has not expired."""
        if settings is not self.settings:  # another configuration: nothing here holds for it
            return decode_token(settings, token)
        known = self._principals.get(token)
        if known is not None:
            if known.expires_at is not None and time.time() < known.expires_at:
                self._principals.move_to_end(token)
                return known
            del self._principals[token]
        principal = decode_token(settings, token)  # raises for a token that does not verify
        self._principals[token] = principal
        if len(self._principals) > self.size:
            self._principals.popitem(last=False)
        return principal


def hash_api_key(key: str, salt: str) -> str:
    """sha256(salt + key), hex: what settings store in place of an API key."""
    return hashlib.sha256(
        bytes.fromhex(salt) + key.encode("utf-8", errors="surrogatepass")
    ).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """(key, salt, sha256) for a new partner: give the key once, configure salt and sha256."""
    key, salt = secrets.token_urlsafe(32), secrets.token_hex(16)
    return key, salt, hash_api_key(key, salt)


def authenticate_api_key(settings: GatewaySettings, key: str) -> Principal:
    """The principal of a configured key; checks every configured entry in constant time."""
    found = None
    for configured in settings.api_keys:
        digest = hash_api_key(key, configured.salt)
        if hmac.compare_digest(digest, configured.sha256) and found is None:
            found = configured
    if found is None:
        raise NotAuthenticated("the API key is not recognised")
    return Principal(
        subject=f"api-key:{found.name}",
        scopes=frozenset(found.scopes),
        method="api_key",
        tenant=found.tenant,
    )


def verify_webhook(
    settings: GatewaySettings,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tenant: str | None = None,
    now: datetime | None = None,
) -> int:
    """Signature first (401), then freshness (409): an unsigned request learns nothing else.

    Returns the delivery's timestamp (unix seconds).
    """
    if not timestamp or not signature:
        raise BadSignature("the delivery lacks its X-Alama-Timestamp or X-Alama-Signature header")
    if not (timestamp.isascii() and signature.isascii()):
        # hmac.compare_digest refuses non-ASCII str (TypeError, a 500); no valid header has any
        raise BadSignature("the X-Alama-Timestamp and X-Alama-Signature headers must be ASCII")
    if tenant is not None and not tenant.isascii():
        raise BadSignature("the X-Alama-Tenant header must be ASCII")
    known = settings.webhook_secret_of(tenant or settings.webhook_tenant)
    if known is None:
        # the same answer as a wrong signature: an outsider learns no tenant names
        raise BadSignature("the X-Alama-Signature does not match the timestamp and body")
    if not signature_matches(known.get_secret_value(), timestamp, body, signature):
        raise BadSignature("the X-Alama-Signature does not match the timestamp and body")
    try:
        sent = int(timestamp.strip())
    except ValueError as exc:
        raise BadSignature("X-Alama-Timestamp must be unix seconds") from exc
    moment = (now or datetime.now(UTC)).timestamp()
    skew = moment - sent
    if abs(skew) > settings.webhook_tolerance_seconds:
        when = "old" if skew > 0 else "far in the future"
        raise StaleDelivery(
            f"the delivery is {abs(skew):.0f}s {when}; deliveries are accepted within"
            f" {settings.webhook_tolerance_seconds}s of their timestamp"
        )
    return sent


def replay_key(signature: str) -> str:
    """The Redis key that remembers a delivery: its signature covers timestamp and body."""
    return "gateway:webhook:seen:" + hashlib.sha256(signature.strip().encode()).hexdigest()


def pseudonymise(settings: GatewaySettings, value: str) -> str:
    """HMAC-SHA256 (hex) under the pseudonym key: stable per value, not reversible."""
    key = settings.pseudonym_key.get_secret_value().encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


_SEPARATORS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"\+?\d{6,15}")


def normalise_phone(raw: str) -> str:
    """One form per Kenyan number (``2547XXXXXXXX``); others become their bare digits.

    ``0712 345 678``, ``+254712345678``, ``254712345678`` and ``712345678`` are the same
    subscriber and must hash the same, or counterparty features would split one person in two.
    """
    compact = _SEPARATORS.sub("", raw)
    if not _PHONE.fullmatch(compact):
        raise ValueError("not a phone number: expected 6 to 15 digits, optionally after '+'")
    digits = compact.removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]  # international dialling prefix
    if len(digits) == 10 and digits[0] == "0" and digits[1] in "17":
        return "254" + digits[1:]
    if len(digits) == 9 and digits[0] in "17":
        return "254" + digits
    return digits


def normalise_national_id(raw: str) -> str:
    """Trim and upper-case, so the same id typed twice hashes the same."""
    return raw.strip().upper()
