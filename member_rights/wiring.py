"""Members' rights wiring: the stores that hold a member's data, opened for the CLI and admin API.

This is the one place outside a service that opens other services' stores, and it does so on
purpose: an export must answer synchronously with every store's data, and no service serves its
members' data over gRPC yet. Each store's queries stay in its own service folder (the explanation
store, the audit store, `feature_store.member_data`); this module only opens them with each
service's settings (`ALAMA_EXPLANATION_DB_SCHEMA`, `ALAMA_AUDIT_*`, `ALAMA_FEATURE_STORE_APP_ID`)
and adapts them to `services.common.member_rights`. It lives beside the services, not in one
(a service imports only itself and the shared library, and its image holds nothing else), and it
holds the audit owner's login and the audit MAC key, which no public-facing process should: the
CLI (`python -m member_rights`, an operator's shell) is the way in, and the gateway's admin routes
answer only where a host injects this backend. The next step is for each service to act on an
erasure event and answer an export over gRPC, so the gateway can serve them itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict

from services.audit.settings import AuditSettings
from services.audit.store import AuditStore, personal_fields
from services.common.member_rights import (
    ErasureRequest,
    MemberDataHolder,
    MemberRef,
    MemberRights,
    MemberRightsBackend,
)
from services.common.postgres import create_pool
from services.common.settings import InfraSettings
from services.explanation.store import DecisionStore
from services.feature_store.member_data import ActivityTableMemberData, FeastMemberData


def _message(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


class DecisionsHolder:
    """Decisions and their explanations (the explanation service's store)."""

    name = "decisions"
    tenant_scoped = True

    def __init__(self, store: DecisionStore) -> None:
        self.store = store

    async def holds(self, member: MemberRef) -> bool:
        return await self.store.holds_member(member.tenant, member.member_id)

    async def export(self, member: MemberRef) -> list[dict[str, Any]]:
        pairs = await self.store.member_decisions(member.tenant, member.member_id)
        return [
            {"decision": _message(d), "explanation": None if e is None else _message(e)}
            for d, e in pairs
        ]

    async def erase(self, member: MemberRef) -> int:
        return await self.store.erase_member(member.tenant, member.member_id)


class AuditHolder:
    """The audit chain: rows about the member's applications, personal values while kept."""

    name = "audit"
    tenant_scoped = True

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def holds(self, member: MemberRef) -> bool:
        return await self.store.holds_member(member.tenant, member.member_id, member.pseudonym)

    async def export(self, member: MemberRef) -> list[dict[str, Any]]:
        records = await self.store.member_records(member.tenant, member.member_id, member.pseudonym)
        return [
            {
                "seq": r.row.seq,
                "event_id": r.row.event_id,
                "topic": r.row.topic,
                "payload_type": r.row.payload_type,
                "occurred_at": r.row.occurred_at.isoformat(),
                "recorded_at": r.row.recorded_at.isoformat(),
                "application_id": r.row.application_id,
                "payload": personal_fields(r),
                "personal_data": "kept" if r.personal is not None else "none or erased",
            }
            for r in records
        ]

    async def erase(self, member: MemberRef) -> int:  # only ever through erase_and_record
        raise NotImplementedError("the audit erases with erase_and_record")

    async def erase_and_record(
        self, request: ErasureRequest, erased: Mapping[str, int]
    ) -> tuple[int, int | None]:
        result = await self.store.erase_member_data(
            tenant=request.member.tenant,
            member_id=request.member.member_id,
            member_ref=request.member.pseudonym,
            request_id=request.request_id,
            requested_by=request.requested_by,
            requested_at=request.requested_at,
            erased_elsewhere=erased,
            holder=self.name,
        )
        return result.events_erased, result.erasure_seq


async def open_member_rights(
    infra: InfraSettings,
    pseudonym_key: bytes,
    *,
    audit: AuditSettings | None = None,
    explanation_schema: str | None = None,
    feature_store_app_id: str | None = None,
) -> MemberRightsBackend:
    """Open every member store; the audit with its owner's login (erasure deletes its
    personal data), the decision store with the shared login."""
    audit = audit or AuditSettings(infra=infra)
    schema = explanation_schema or os.environ.get("ALAMA_EXPLANATION_DB_SCHEMA", "explanation")
    app_id = feature_store_app_id or os.environ.get("ALAMA_FEATURE_STORE_APP_ID", "feature_store")
    shared = await create_pool(infra, max_size=2)
    owner = await create_pool(
        infra.model_copy(update={"postgres_dsn": audit.owner_dsn}), max_size=2
    )
    stores: list[MemberDataHolder] = [
        FeastMemberData(infra),
        ActivityTableMemberData(infra, app_id=app_id),
        DecisionsHolder(DecisionStore(shared, schema)),
    ]
    audit_holder = AuditHolder(AuditStore(owner, audit.db_schema, mac_key=audit.mac_key_bytes))
    return MemberRightsBackend(
        MemberRights(stores, audit_holder), pseudonym_key, [shared.close, owner.close]
    )
