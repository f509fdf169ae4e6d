"""The audit chain's part of a member's data, as `services.common.member_rights` holders read
and erase it (the CLI's direct path, and the service's answer to an export request)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.audit.store import AuditStore, personal_fields
from services.common.member_rights import ErasureRequest, MemberRef


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
