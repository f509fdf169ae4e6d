"""Operations an administrator performs: token revocation, and members' rights (Kenya Data
Protection Act 2019): export everything held on a member, erase it.

Member routes take the member id in the JSON body, never in the path: URLs end up in span
attributes (`http.target`), proxies' and load balancers' logs, and a raw member id must appear in
none of them. The tenant is the caller's (`Principal.tenant`): another tenant's member is a 404.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, Security, status
from pydantic import AwareDatetime, Field

from services.common.member_exports import (
    EXPORT_ID_PATTERN,
    ExportRequest,
    export_report,
    export_request_envelope,
)
from services.common.member_rights import (
    MEMBER_ID_PATTERN,
    ErasureRequest,
    InvalidMember,
    MemberNotFound,
    MemberRef,
    MemberRightsFailed,
)
from services.gateway.clients import Backends
from services.gateway.deps import BackendsDep, authenticate
from services.gateway.erasure_status import erasure_report, erasure_request_envelope
from services.gateway.errors import InvalidRequest, NotFound, UpstreamUnavailable
from services.gateway.schemas import Model
from services.gateway.security import ADMIN, Principal
from services.gateway.shedding import SHED_RESPONSES

log = logging.getLogger(__name__)
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


class MemberQuery(Model):
    member_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=MEMBER_ID_PATTERN,
        description="the member's id in the caller's tenant (core banking's member number)",
    )


class MemberExportDocument(Model):
    """Everything Alama holds on the member, by store."""

    member_id: str
    tenant: str
    member_ref: str = Field(description="the member's pseudonym in spans, logs and the audit")
    exported_at: str
    law: str
    stores: dict[str, Any] = Field(
        description="feast (online, offline), faust_tables, decisions (with explanations), audit"
    )


class ErasureReceiptDocument(Model):
    """What the erasure did, per store, and what no erasure can reach."""

    request_id: str
    tenant: str
    member_ref: str
    requested_by: str
    requested_at: str
    erased: dict[str, int] = Field(description="records removed or made unreadable, per store")
    audit_seq: int | None = Field(description="where the request sits in the audit chain")
    kept: list[str]
    law: str


_MEMBER_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "The caller's tenant holds nothing on this member"},
    503: {"description": "Member rights are off on this gateway, or a store is unavailable"},
}


def _member(backends: Backends, admin: Principal, member_id: str) -> MemberRef:
    if backends.members is None:
        raise UpstreamUnavailable(
            "member rights are not served by this gateway; use `python -m member_rights`"
        )
    try:
        return backends.members.member(admin.tenant, member_id)
    except InvalidMember as exc:
        raise InvalidRequest(str(exc), loc=("body", "member_id")) from None


@router.post("/members/export", responses=_MEMBER_RESPONSES)
async def export_member(
    query: MemberQuery, backends: BackendsDep, admin: Admin
) -> MemberExportDocument:
    """Everything Alama holds on one of the tenant's members (decisions, explanations, audit
    rows, Feast online and offline, the feature store's tables) as one JSON document."""
    member = _member(backends, admin, query.member_id)
    assert backends.members is not None
    try:
        export = await backends.members.rights.export(member)
    except MemberNotFound as exc:
        raise NotFound(str(exc)) from None
    except (OSError, TimeoutError) as exc:
        raise UpstreamUnavailable(f"a member store is unavailable ({type(exc).__name__})") from exc
    log.info(
        "member exported",
        extra={"member_ref": member.pseudonym, "tenant": member.tenant, "by": admin.subject},
    )
    return MemberExportDocument(**export.document())


class ErasureAccepted(Model):
    """The erasure request is on its way to every store; follow it at `status_url`."""

    request_id: str
    status_url: str


class ErasureStatusDocument(Model):
    """Per store: pending, or its completion (records erased, whether the tenant held it)."""

    request_id: str
    member_ref: str
    requested_at: str
    status: str = Field(description="pending, completed, or not_found (no store held the member)")
    stores: dict[str, Any]


@router.post(
    "/members/erasures",
    responses=_MEMBER_RESPONSES
    | {202: {"model": ErasureAccepted, "description": "Published to every store"}},
)
async def erase_member(
    query: MemberQuery, backends: BackendsDep, admin: Admin, response: Response
) -> ErasureReceiptDocument | ErasureAccepted:
    """Erase one of the tenant's members everywhere Alama can (crypto-shredding the audit
    chain's personal data, which still verifies) and record the request in the audit chain.

    In a deployment this publishes a MemberErasureRequested event and answers 202 with the
    request id: each store erases its part and reports back (GET .../erasures/{request_id}).
    Where a host injects every store (`backends.members`), it erases in place and returns the
    receipt. Repeating it is safe."""
    if backends.members is None and backends.erasures is not None:
        return await _request_erasure(query, backends, admin, response)
    member = _member(backends, admin, query.member_id)
    assert backends.members is not None
    request = ErasureRequest.new(member, requested_by=f"{admin.method}:{admin.subject}")
    try:
        receipt = await backends.members.rights.erase(request)
    except MemberNotFound as exc:
        raise NotFound(str(exc)) from None
    except MemberRightsFailed as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    except (OSError, TimeoutError) as exc:
        raise UpstreamUnavailable(f"a member store is unavailable ({type(exc).__name__})") from exc
    log.info(
        "member erased",
        extra={
            "member_ref": member.pseudonym,
            "tenant": member.tenant,
            "request_id": receipt.request_id,
            "audit_seq": receipt.audit_seq,
        },
    )
    return ErasureReceiptDocument(**receipt.document())


async def _request_erasure(
    query: MemberQuery, backends: Backends, admin: Principal, response: Response
) -> ErasureAccepted:
    assert backends.erasures is not None and backends.members_key is not None
    try:
        member = MemberRef.of(admin.tenant, query.member_id, backends.members_key)
    except InvalidMember as exc:
        raise InvalidRequest(str(exc), loc=("body", "member_id")) from None
    request = ErasureRequest.new(member, requested_by=f"{admin.method}:{admin.subject}")
    await backends.erasures.requested(
        member.tenant, request.request_id, member.pseudonym, request.requested_at.isoformat()
    )
    await backends.events.publish(backends.erasures_topic, [erasure_request_envelope(request)])
    log.info(
        "member erasure requested",
        extra={
            "member_ref": member.pseudonym,
            "tenant": member.tenant,
            "request_id": request.request_id,
        },
    )
    response.status_code = status.HTTP_202_ACCEPTED
    return ErasureAccepted(
        request_id=request.request_id,
        status_url=f"/v1/admin/members/erasures/{request.request_id}",
    )


@router.get(
    "/members/erasures/{request_id}",
    responses={
        404: {"description": "No such request in the caller's tenant"},
        503: {"description": "The erasure status store is unavailable"},
    },
)
async def erasure_status(
    request_id: Annotated[str, Path(max_length=64, pattern=r"^erasure-[0-9a-f-]{36}$")],
    backends: BackendsDep,
    admin: Admin,
) -> ErasureStatusDocument:
    """Where an erasure request stands in each store (the caller's tenant only)."""
    if backends.erasures is None:
        raise UpstreamUnavailable("this gateway keeps no erasure status")
    found = await backends.erasures.status(admin.tenant, request_id)
    if found is None:
        raise NotFound("no erasure request with this id in your tenant")
    return ErasureStatusDocument(**erasure_report(request_id, found))


class ExportAccepted(Model):
    """The export request is on its way to every store; collect the document at `status_url`."""

    request_id: str
    status_url: str


class ExportStatusDocument(Model):
    """Per store: pending, or its part of the member's data; the whole once every store
    answered. Kept for a day (`ALAMA_GATEWAY_EXPORT_TTL_HOURS`): it is personal data."""

    request_id: str
    member_ref: str
    requested_at: str
    status: str = Field(description="pending, completed, or not_found (the tenant holds nothing)")
    stores: dict[str, Any] = Field(
        description="decisions (with explanations), audit, feast (online, offline), faust_tables"
    )


@router.post(
    "/members/exports",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {"model": ExportAccepted, "description": "Published to every store"},
        503: {"description": "Kafka or the export store is unavailable"},
    },
)
async def request_export(query: MemberQuery, backends: BackendsDep, admin: Admin) -> ExportAccepted:
    """Ask every store for one of the tenant's members' data (the event path a deployment
    uses): each store answers with its part and `GET .../exports/{request_id}` returns them."""
    if backends.exports is None or backends.members_key is None:
        raise UpstreamUnavailable("this gateway keeps no member exports")
    try:
        member = MemberRef.of(admin.tenant, query.member_id, backends.members_key)
    except InvalidMember as exc:
        raise InvalidRequest(str(exc), loc=("body", "member_id")) from None
    request = ExportRequest.new(member, requested_by=f"{admin.method}:{admin.subject}")
    await backends.exports.requested(
        member.tenant, request.request_id, member.pseudonym, request.requested_at.isoformat()
    )
    await backends.events.publish(
        backends.exports_topic, [export_request_envelope(request, producer="gateway")]
    )
    log.info(
        "member export requested",
        extra={
            "member_ref": member.pseudonym,
            "tenant": member.tenant,
            "request_id": request.request_id,
            "by": admin.subject,
        },
    )
    return ExportAccepted(
        request_id=request.request_id,
        status_url=f"/v1/admin/members/exports/{request.request_id}",
    )


@router.get(
    "/members/exports/{request_id}",
    responses={
        404: {"description": "No such request in the caller's tenant (or it expired)"},
        503: {"description": "The export store is unavailable"},
    },
)
async def export_status(
    request_id: Annotated[str, Path(max_length=64, pattern=EXPORT_ID_PATTERN)],
    backends: BackendsDep,
    admin: Admin,
) -> ExportStatusDocument:
    """The member's data as each store answered (the caller's tenant only)."""
    if backends.exports is None:
        raise UpstreamUnavailable("this gateway keeps no member exports")
    found = await backends.exports.status(admin.tenant, request_id)
    if found is None:
        raise NotFound("no export request with this id in your tenant")
    return ExportStatusDocument(**export_report(request_id, found))
