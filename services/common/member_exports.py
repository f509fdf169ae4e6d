"""Members' export as events: the request the gateway publishes, each store's part, and the
document the gateway assembles from the parts (the right of access, Kenya Data Protection Act
2019).

`POST /v1/admin/members/exports` publishes a `MemberExportRequested` on member.exports (keyed by
the member's tenant-scoped key, so the feature store worker holding the member's tables gets it)
and answers 202. Each service that holds members' data answers with one `MemberExportPart` per
store it owns (`ExportAnswer`), built by the same `MemberDataHolder.export` the CLI's direct
export calls, so both ways return the same document. The gateway keeps the parts for a day and
`GET /v1/admin/members/exports/{request_id}` returns them once every store has answered. A
member no store of the tenant's decisions holds is `not_found`, whatever the others answered.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from services.common.envelope import Event, wrap
from services.common.member_rights import (
    ERASURE_STORES,
    TENANT_SCOPED_STORES,
    MemberDataHolder,
    MemberRef,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberExportPart,
    MemberExportRequested,
)

log = logging.getLogger(__name__)

EXPORT_STORES = ERASURE_STORES
EXPORT_ID_PATTERN = r"^export-[0-9a-f-]{36}$"

#: publishes one envelope on a topic and waits until the broker has it
Send = Callable[[str, EventEnvelope], Awaitable[None]]


@dataclass(frozen=True)
class ExportRequest:
    """Who asked for which member's data, and when."""

    request_id: str
    member: MemberRef
    requested_by: str
    requested_at: datetime

    @classmethod
    def new(cls, member: MemberRef, requested_by: str, now: datetime | None = None) -> Self:
        return cls(f"export-{uuid.uuid4()}", member, requested_by, now or datetime.now(UTC))


def export_requested(request: ExportRequest) -> MemberExportRequested:
    message = MemberExportRequested(
        request_id=request.request_id,
        tenant_id=request.member.tenant,
        member_id=request.member.member_id,
        member_ref=request.member.pseudonym,
        requested_by=request.requested_by,
    )
    message.requested_at.FromDatetime(request.requested_at)
    return message


def export_request_envelope(request: ExportRequest, producer: str) -> EventEnvelope:
    """Keyed by the member's tenant-scoped key: the partition of the member's feature tables."""
    return wrap(
        export_requested(request),
        producer=producer,
        subject=request.member.key,
        event_id=request.request_id,
        occurred_at=request.requested_at,
    )


def export_request_of(message: MemberExportRequested) -> ExportRequest:
    """The request a `MemberExportRequested` carries (validated like an admin's input)."""
    return ExportRequest(
        request_id=message.request_id,
        member=MemberRef.carried(message.tenant_id, message.member_id, message.member_ref),
        requested_by=message.requested_by,
        requested_at=message.requested_at.ToDatetime(tzinfo=UTC),
    )


def export_part(
    request: ExportRequest,
    store: str,
    data: Any,
    *,
    member_held: bool,
    now: datetime | None = None,
) -> MemberExportPart:
    part = MemberExportPart(
        request_id=request.request_id,
        tenant_id=request.member.tenant,
        member_ref=request.member.pseudonym,
        store=store,
        member_held=member_held,
        data_json=json.dumps(data, default=str, sort_keys=True),
    )
    part.completed_at.FromDatetime(now or datetime.now(UTC))
    return part


def part_event_id(request_id: str, store: str) -> str:
    """Deterministic: a redelivered request publishes the same part again."""
    return f"{request_id}/{store}"


class ExportAnswer:
    """A service's answer to an export request: one part per store it holds, on the broker
    before the request's offset is committed. Tenant-scoped holders say whether the tenant holds
    the member (and export nothing when not); the others export what their tenant-scoped keys
    hold."""

    def __init__(
        self, holders: Sequence[MemberDataHolder], send: Send, parts_topic: str, service: str
    ) -> None:
        self.holders = holders
        self.send = send
        self.parts_topic = parts_topic
        self.service = service

    async def handle(self, event: Event[Any], _record: object = None) -> None:
        request = export_request_of(event.payload)  # InvalidMember: a dead letter with its reason
        member = request.member
        for holder in self.holders:
            held = await holder.holds(member) if holder.tenant_scoped else True
            data = await holder.export(member) if held else []
            if not holder.tenant_scoped:
                held = bool(data)
            envelope = wrap(
                export_part(request, holder.name, data, member_held=held),
                producer=self.service,
                subject=request.request_id,
                event_id=part_event_id(request.request_id, holder.name),
            )
            await self.send(self.parts_topic, envelope)
        log.info(
            "member export answered",
            extra={
                "request_id": request.request_id,
                "member_ref": member.pseudonym,
                "tenant": member.tenant,
                "stores": [h.name for h in self.holders],
            },
        )


def part_status(part: MemberExportPart) -> str:
    """What the gateway keeps of a part (a JSON text per store)."""
    return json.dumps(
        {
            "member_held": part.member_held,
            "completed_at": part.completed_at.ToJsonString(),
            "data": json.loads(part.data_json or "null"),
        }
    )


def export_report(request_id: str, found: Mapping[str, str]) -> dict[str, Any]:
    """The export document: per store pending or its data, and the request overall
    (``completed``; ``pending``; ``not_found`` when no tenant-scoped store holds the member,
    then without any store's data)."""
    stores: dict[str, Any] = {}
    for store in EXPORT_STORES:
        raw = found.get(f"store:{store}")
        stores[store] = (
            {"status": "pending"} if raw is None else json.loads(raw) | {"status": "completed"}
        )
    scoped = [stores[s] for s in TENANT_SCOPED_STORES]
    if all(s["status"] == "completed" and not s["member_held"] for s in scoped):
        overall = "not_found"
        stores = {name: {"status": "completed", "member_held": False} for name in stores}
    elif all(s["status"] == "completed" for s in stores.values()):
        overall = "completed"
    else:
        overall = "pending"
    return {
        "request_id": request_id,
        "member_ref": found.get("member_ref", ""),
        "requested_at": found.get("requested_at", ""),
        "status": overall,
        "stores": stores,
    }
