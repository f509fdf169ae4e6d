"""The audit service's part of a member's erasure, and the voucher for the stores without tenants.

On a `MemberErasureRequested` (member.erasures) the audit checks that the tenant holds the member
(its chain has the member's events, or records erasing them), then, in one transaction,
crypto-shreds the member's personal data and records the request in the chain under the member's
pseudonym (`AuditStore.erase_member_data`, event id = request id, so a redelivered request is
recorded once). That DELETE needs the schema owner's login, which the audit service already holds
to migrate on start; appends stay on the writer's. It then answers with a `MemberErasureCompleted`
(store "audit", with the chain's seq) and, only when the member is the tenant's, republishes the
request on member.erasures.vouched keyed by member id, for the feature store (Feast and the
Faust tables know no tenants, so they erase only what a tenant-scoped store vouched for). A
request for a member the tenant does not hold is answered `member_held=false` and not recorded
(recording it would make the member look held by that tenant next time).

Every store's `MemberErasureCompleted` (member.erasures.completed) is appended to the chain like
any consumed event (AUDITED_TOPICS in consumer.py): it names the member by pseudonym only.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRecord

from services.audit.member_data import AuditHolder
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.common.envelope import Event, wrap
from services.common.kafka import create_producer, publish_traced
from services.common.member_exports import ExportAnswer
from services.common.member_rights import (
    completion_envelope,
    erasure_request_of,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import MemberErasureRequested
from services.common.topics import MEMBER_ERASURES_COMPLETED, MEMBER_ERASURES_VOUCHED

log = logging.getLogger(__name__)

STORE = "audit"


class AuditErasures:
    """Erase-and-record with the owner's store; publish the completion and the vouched request."""

    def __init__(
        self,
        settings: AuditSettings,
        owner_store: AuditStore,
        completed_topic: str = MEMBER_ERASURES_COMPLETED,
        vouched_topic: str = MEMBER_ERASURES_VOUCHED,
    ) -> None:
        self.service = settings.service_name
        self.store = owner_store
        self.completed_topic = completed_topic
        self.vouched_topic = vouched_topic
        self.producer = create_producer(settings.infra, client_id=f"{self.service}-erasures")
        # a member's export: the audit rows about the tenant's member, as the CLI exports them
        self.exports = ExportAnswer(
            [AuditHolder(owner_store)], self._send, settings.export_parts_topic, self.service
        )

    async def _send(self, topic: str, envelope: EventEnvelope) -> None:
        await (await publish_traced(self.producer, topic, envelope))

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def handle(self, event: Event[Any], _record: ConsumerRecord | None = None) -> None:
        message: MemberErasureRequested = event.payload
        request = erasure_request_of(message)  # InvalidMember: a dead letter with its reason
        member = request.member
        held = await self.store.holds_member(member.tenant, member.member_id, member.pseudonym)
        erased, seq = 0, None
        if held:
            result = await self.store.erase_member_data(
                tenant=member.tenant,
                member_id=member.member_id,
                member_ref=member.pseudonym,
                request_id=request.request_id,
                requested_by=request.requested_by,
                requested_at=request.requested_at,
                erased_elsewhere={},
                holder=STORE,
            )
            erased, seq = result.events_erased, result.erasure_seq
        deliveries = []
        if held:  # first the vouch, so the status never reads "done" before Feast is asked
            vouched = wrap(
                message,
                producer=self.service,
                subject=member.key,  # the key the feature store's tables and source topics use
                event_id=f"{request.request_id}/vouched",
                occurred_at=request.requested_at,
            )
            deliveries.append(await publish_traced(self.producer, self.vouched_topic, vouched))
        completion = completion_envelope(
            request, STORE, erased, producer=self.service, member_held=held, audit_seq=seq
        )
        deliveries.append(await publish_traced(self.producer, self.completed_topic, completion))
        for delivery in deliveries:
            await delivery  # on the broker before the request's offset is committed
        log.info(
            "member erasure handled by the audit",
            extra={
                "request_id": request.request_id,
                "member_ref": member.pseudonym,
                "tenant": member.tenant,
                "held": held,
                "events_erased": erased,
                "audit_seq": seq,
            },
        )
