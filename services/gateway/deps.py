"""FastAPI dependencies: the settings, the backends, and who the caller is.

Authentication accepts an OAuth2-style bearer JWT or an ``X-API-Key``; FastAPI's security
schemes read the headers (and document them in OpenAPI), `SecurityScopes` carries what the route
needs. Failures raise domain errors; app.py turns them into 401 or 403. An authenticated request
spends one request of its tenant's rate limit (429 beyond it, rate_limits.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from services.gateway.clients import Backends
from services.gateway.errors import InsufficientScope, NotAuthenticated
from services.gateway.model_inputs import ServingModel
from services.gateway.rate_limits import admit
from services.gateway.security import (
    SCOPES,
    Principal,
    VerifiedTokens,
    authenticate_api_key,
    decode_token,
)
from services.gateway.settings import GatewaySettings

_scope_list = ", ".join(f"`{name}` ({text})" for name, text in SCOPES.items())
bearer_scheme = HTTPBearer(
    bearerFormat="JWT",
    scheme_name="bearer",
    description=f"HS256 JWT with a space-separated `scope` claim; scopes: {_scope_list}",
    auto_error=False,
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    description="A partner API key; its scopes are configured with the key",
    auto_error=False,
)


async def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def get_backends(request: Request) -> Backends:
    backends: Backends | None = getattr(request.app.state, "backends", None)
    if backends is None:
        raise RuntimeError("the gateway's backends are not open: the lifespan did not run")
    return backends


def serving_model(request: Request) -> ServingModel:
    model: ServingModel = request.app.state.serving_model
    return model


# async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a hand-off that
# cost more than the rest of the request's dependencies together
SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
BackendsDep = Annotated[Backends, Depends(get_backends)]


async def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> Principal:
    """The caller, with every scope the route asks for (``admin`` implies them all); a
    revoked token is refused like an invalid one, a tenant over its rate with 429."""
    backends: Backends | None = getattr(request.app.state, "backends", None)
    if bearer is not None:
        verified: VerifiedTokens | None = getattr(request.app.state, "verified_tokens", None)
        principal = (
            verified.principal(settings, bearer.credentials)
            if verified is not None
            else decode_token(settings, bearer.credentials)
        )
        revocations = backends.revocations if backends is not None else None
        if (
            principal.token_id is not None
            and revocations is not None
            and await revocations.revoked(principal.token_id)
        ):
            raise NotAuthenticated("the bearer token has been revoked")
    elif api_key:
        principal = authenticate_api_key(settings, api_key)
    else:
        raise NotAuthenticated("authenticate with a bearer token or an X-API-Key header")
    if backends is not None and backends.limiter is not None:
        admit(request, await backends.limiter.spend_tenant(principal.tenant))
    missing = principal.missing(security_scopes.scopes)
    if missing:
        raise InsufficientScope(
            f"this operation needs the scope(s) {' '.join(missing)}",
            required=security_scopes.scopes,
        )
    return principal
