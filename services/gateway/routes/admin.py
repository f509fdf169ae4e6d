"""Operations an administrator performs on the gateway itself."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, Security, status
from pydantic import AwareDatetime, Field

from services.gateway.deps import BackendsDep, authenticate
from services.gateway.errors import UpstreamUnavailable
from services.gateway.schemas import Model
from services.gateway.security import ADMIN, Principal
from services.gateway.shedding import SHED_RESPONSES

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=SHED_RESPONSES)
Admin = Annotated[Principal, Security(authenticate, scopes=[ADMIN])]


class Revocation(Model):
    token_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="the token's jti"
    )
    expires_at: AwareDatetime = Field(description="the token's exp: kept revoked until then")


@router.post(
    "/revocations",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={503: {"description": "The revocation list is unavailable"}},
)
async def revoke_token(revocation: Revocation, backends: BackendsDep, _admin: Admin) -> Response:
    """Revoke a bearer token before it expires (a lost laptop, a leaver): from now on every
    request carrying it is a 401."""
    if backends.revocations is None:
        raise UpstreamUnavailable("this gateway has no revocation list")
    until: datetime = revocation.expires_at
    await backends.revocations.revoke(revocation.token_id, until)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
