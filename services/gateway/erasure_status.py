"""Members' erasure as events: the request the gateway publishes, and the status it reports.

`POST /v1/admin/members/erasures` publishes a `MemberErasureRequested` (member.erasures) and
answers 202 with the request id; the stores that hold members' data (explanation's decisions,
the audit chain, the feature store's Feast rows and Faust tables, the console, the outcomes
service, the retrainer) each
erase their part and answer with a `MemberErasureCompleted` (member.erasures.completed); a store
that has not answered (the retrainer runs on demand) is reported pending, and so is the request.
The gateway consumes those in its own group and keeps them in Redis per tenant and request
(`RedisErasureStatuses`), which `GET /v1/admin/members/erasures/{request_id}` reads. The gateway
holds no store's login and imports nothing but itself and the shared library.
"""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord

from services.common.envelope import Event, wrap
from services.common.kafka import EventConsumer, Route
from services.common.member_exports import part_status
from services.common.member_rights import ERASURE_STORES, TENANT_SCOPED_STORES, ErasureRequest
from services.common.member_rights import erasure_requested as requested_payload
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberExportPart,
)
from services.gateway.clients import ErasureStatuses
from services.gateway.settings import GatewaySettings

PRODUCER = "gateway"


def erasure_request_envelope(request: ErasureRequest) -> EventEnvelope:
    """Keyed by request id: the raw member id is in the payload only."""
    return wrap(
        requested_payload(request),
        producer=PRODUCER,
        subject=request.request_id,
        event_id=request.request_id,
        occurred_at=request.requested_at,
    )


def completion_status(completion: MemberErasureCompleted) -> str:
    return json.dumps(
        {
            "records_erased": completion.records_erased,
            "member_held": completion.member_held,
            "completed_at": completion.completed_at.ToJsonString(),
        }
    )


def erasure_report(request_id: str, found: dict[str, str]) -> dict[str, Any]:
    """The status document: per store pending or its completion, and the request overall
    (``completed``, ``pending``, or ``not_found`` when no tenant-scoped store held the member)."""
    stores: dict[str, Any] = {}
    for store in ERASURE_STORES:
        raw = found.get(f"store:{store}")
        stores[store] = (
            {"status": "pending"} if raw is None else json.loads(raw) | {"status": "completed"}
        )
    scoped = [stores[s] for s in TENANT_SCOPED_STORES]
    if all(s["status"] == "completed" and not s["member_held"] for s in scoped):
        overall = "not_found"
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


def build_status_consumer(
    settings: GatewaySettings, statuses: ErasureStatuses, exports: ErasureStatuses | None = None
) -> EventConsumer:
    """The consumer that records each store's erasure completion and, with `exports`, each
    store's export part (at least once; the first one kept)."""

    async def handle(event: Event[Any], _record: ConsumerRecord) -> None:
        completion: MemberErasureCompleted = event.payload
        await statuses.completed(
            completion.tenant_id,
            completion.request_id,
            completion.store,
            completion_status(completion),
        )

    async def keep_part(event: Event[Any], _record: ConsumerRecord) -> None:
        part: MemberExportPart = event.payload
        assert exports is not None
        await exports.completed(part.tenant_id, part.request_id, part.store, part_status(part))

    routes = {settings.erasures_completed_topic: Route((MemberErasureCompleted,), handle)}
    if exports is not None:
        routes[settings.export_parts_topic] = Route((MemberExportPart,), keep_part)
    return EventConsumer(settings, group_id=settings.erasure_status_group, routes=routes)
