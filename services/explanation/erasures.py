"""The explanation service's part of a member's erasure: its stored decisions and explanations.

Consumes `MemberErasureRequested` (member.erasures), deletes the tenant's member's decisions
(their explanations go by cascade), remembers the member in the store's erased-members set so a
redelivered decision is not stored again, and answers with a `MemberErasureCompleted`
(store "decisions", member.erasures.completed). The completion's event id is derived from the
request, so a redelivered request publishes the same event again (counted 0, ignored by the
status). Nothing here logs the raw member id, only the pseudonym the request carries.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord

from services.common.envelope import Event
from services.common.kafka import publish_traced
from services.common.member_rights import (
    completion_envelope,
    erasure_request_of,
)
from services.common.protos.alama.events.v1.members_pb2 import MemberErasureRequested
from services.explanation.store import DecisionStore

log = logging.getLogger(__name__)

STORE = "decisions"


class DecisionErasures:
    """Handles erasure requests for the decision store and publishes the completions."""

    def __init__(
        self, store: DecisionStore, producer: AIOKafkaProducer, topic: str, service: str
    ) -> None:
        self.store = store
        self.producer = producer
        self.topic = topic
        self.service = service

    async def handle(self, event: Event[Any], _record: ConsumerRecord | None = None) -> None:
        message: MemberErasureRequested = event.payload
        request = erasure_request_of(message)  # InvalidMember: a dead letter with its reason
        member = request.member
        held = await self.store.holds_member(member.tenant, member.member_id) or (
            await self.store.erased(member.tenant, member.member_id)
        )
        erased = await self.store.erase_member(
            member.tenant, member.member_id, erased_at=datetime.now(UTC)
        )
        envelope = completion_envelope(
            request, STORE, erased, producer=self.service, member_held=held
        )
        delivery = await publish_traced(self.producer, self.topic, envelope)
        await delivery  # on the broker before the request's offset is committed
        log.info(
            "member erased from the decision store",
            extra={
                "request_id": request.request_id,
                "member_ref": member.pseudonym,
                "tenant": member.tenant,
                "decisions": erased,
                "held": held,
            },
        )
