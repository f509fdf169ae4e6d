"""The console's part of a member's data (Kenya Data Protection Act 2019): the applications it
keeps (with the protected attributes core banking sent), the decisions, review items and every
action on them (an officer's justification, a member's grounds).

`ConsoleHolder` is what `services.common.member_rights` reads and erases (the CLI's direct path
and the answer to an export event); `ConsoleErasures` answers `MemberErasureRequested` on
member.erasures with a `MemberErasureCompleted` (store "console"), its event id derived from the
request so a redelivery publishes the same event. Nothing here logs the raw member id.
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
from services.console.store import ConsoleStore

log = logging.getLogger(__name__)
STORE = "console"
Send = Callable[[str, EventEnvelope], Awaitable[None]]


class ConsoleHolder:
    name = STORE
    tenant_scoped = True

    def __init__(self, store: ConsoleStore) -> None:
        self.store = store

    async def holds(self, member: MemberRef) -> bool:
        return await self.store.holds_member(member.tenant, member.member_id)

    async def export(self, member: MemberRef) -> dict[str, Any]:
        return await self.store.member_data(member.tenant, member.member_id)

    async def erase(self, member: MemberRef) -> int:
        return await self.store.erase_member(member.tenant, member.member_id)


class ConsoleErasures:
    def __init__(self, store: ConsoleStore, send: Send, topic: str, service: str) -> None:
        self.store = store
        self.send = send
        self.topic = topic
        self.service = service

    async def handle(self, event: Event[Any], _record: object = None) -> None:
        message: MemberErasureRequested = event.payload
        request = erasure_request_of(message)  # InvalidMember: a dead letter with its reason
        member = request.member
        held = await self.store.holds_member(member.tenant, member.member_id)
        erased = await self.store.erase_member(member.tenant, member.member_id)
        envelope = completion_envelope(
            request, STORE, erased, producer=self.service, member_held=held
        )
        await self.send(self.topic, envelope)  # on the broker before the offset commits
        log.info(
            "member erased from the console",
            extra={
                "request_id": request.request_id,
                "member_ref": member.pseudonym,
                "tenant": member.tenant,
                "rows": erased,
                "held": held,
            },
        )
