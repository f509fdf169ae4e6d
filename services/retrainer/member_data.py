"""The retrainer's part of a member's data (Kenya Data Protection Act 2019): the applications it
keeps to train challengers on (member id, product, amount, term, time) and their outcomes.

`RetrainerHolder` is what `services.common.member_rights` reads and erases (the CLI's direct path
and the answer to an export event); `RetrainerErasures` answers `MemberErasureRequested` on
member.erasures with a `MemberErasureCompleted` (store "retrainer"), its event id derived from the
request so a redelivery publishes the same event. Nothing here logs the raw member id.

The retrainer runs on demand (`python -m infra.supervisor up retrainer`, compose's `retrainer`
profile), so it may be down when a request is made. The gateway's status then reports the store
"pending", and so the request as a whole: never "completed" while this store still holds the
member. Its consumer commits a request's offset only once the answer is on the broker, and a
group with no committed offset starts at the earliest one (`common.kafka.create_consumer`), so
it answers every request still on the topics when it starts: member.erasures keeps them 7 days,
member.exports one (and the gateway keeps export parts for `ALAMA_GATEWAY_EXPORT_TTL_HOURS`). A
request older than that stays pending: repeat it, or use the CLI, which opens this store itself.
An erasure is dated at the request, not at the late answer (`RetrainerStore.erase_member`).

The store is all it keeps: each run's live rows exist as a file only while the job runs
(`runner.Runner`). A challenger already trained on the member's rows is not retrained.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from services.common.envelope import Event
from services.common.member_rights import (
    MemberRef,
    completion_envelope,
    erasure_request_of,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import MemberErasureRequested
from services.retrainer.store import RetrainerStore

log = logging.getLogger(__name__)
STORE = "retrainer"
Send = Callable[[str, EventEnvelope], Awaitable[None]]


class RetrainerHolder:
    name = STORE
    tenant_scoped = True  # its applications name the tenant

    def __init__(self, store: RetrainerStore) -> None:
        self.store = store

    async def holds(self, member: MemberRef) -> bool:
        return await self.store.holds_member(member.tenant, member.member_id)

    async def export(self, member: MemberRef) -> dict[str, Any]:
        return await self.store.member_data(member.tenant, member.member_id)

    async def erase(self, member: MemberRef) -> int:
        return await self.store.erase_member(member.tenant, member.member_id)


class RetrainerErasures:
    def __init__(self, store: RetrainerStore, send: Send, topic: str, service: str) -> None:
        self.store = store
        self.send = send
        self.topic = topic
        self.service = service

    async def handle(self, event: Event[Any], _record: object = None) -> None:
        message: MemberErasureRequested = event.payload
        request = erasure_request_of(message)  # InvalidMember: a dead letter with its reason
        member = request.member
        held = await self.store.holds_member(member.tenant, member.member_id)
        # dated at the request (None, so now and everything, when the request carries no time)
        at = request.requested_at if message.HasField("requested_at") else None
        erased = await self.store.erase_member(member.tenant, member.member_id, erased_at=at)
        envelope = completion_envelope(
            request, STORE, erased, producer=self.service, member_held=held
        )
        await self.send(self.topic, envelope)  # on the broker before the offset commits
        log.info(
            "member erased from the retrainer",
            extra={
                "request_id": request.request_id,
                "member_ref": member.pseudonym,
                "tenant": member.tenant,
                "rows": erased,
                "held": held,
            },
        )
