"""Wiring: consume the decision pipeline's topics (and the model registry's changes) and append
every event to the audit chain.

The handler only buffers rows; the consumer's `on_batch` hook writes the whole polled batch in
one transaction before the offsets are committed, so a crash replays the batch (duplicates are then
skipped by event id) and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import ConsumerRecord
from google.protobuf.message import Message

from services.audit.anchors import Anchorer
from services.audit.chain import EntryDraft, draft_from_event
from services.audit.erasures import AuditErasures
from services.audit.metrics import DUPLICATES, FLUSH_BATCHES, ROWS_APPENDED
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.common.envelope import Event
from services.common.kafka import EventConsumer, Route
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberErasureRequested,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged, ReviewOutcome
from services.common.topics import (
    APPEALS,
    CREDIT_DECISIONS,
    CREDIT_EXPLANATIONS,
    LOAN_APPLICATIONS,
    MEMBER_ERASURES,
    MEMBER_ERASURES_COMPLETED,
    MODEL_REGISTRY,
    REVIEW_OUTCOMES,
)

log = logging.getLogger(__name__)

AUDITED_TOPICS: Mapping[str, tuple[type[Message], ...]] = {
    LOAN_APPLICATIONS: (LoanApplicationSubmitted,),
    CREDIT_DECISIONS: (CreditDecision,),
    CREDIT_EXPLANATIONS: (CreditExplanation,),
    REVIEW_OUTCOMES: (ReviewOutcome,),
    APPEALS: (AppealLodged,),
    # every store's answer to an erasure request (pseudonym only); the request itself is
    # recorded by AuditErasures with the member's data it shreds
    MEMBER_ERASURES_COMPLETED: (MemberErasureCompleted,),
    # which model decides: every promotion, refusal, rollback and challenger, with who asked
    # (a system record: no tenant, no application; its event id is the change's id)
    MODEL_REGISTRY: (ModelRegistryChanged,),
}


class AuditWriter:
    """Buffers the drafts of one polled batch and appends them together."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self.pending: list[EntryDraft] = []

    async def handle(self, event: Event[Any], record: ConsumerRecord) -> None:
        self.pending.append(draft_from_event(event, record.topic, record.headers))

    async def flush(self) -> None:
        if not self.pending:
            return
        # taken at the start: a failed append leaves nothing behind for the consumer's retry
        batch, self.pending = self.pending, []
        result = await self.store.append(batch)
        ROWS_APPENDED.inc(result.appended)
        DUPLICATES.inc(result.duplicates)
        FLUSH_BATCHES.inc()
        log.debug(
            "audit batch appended",
            extra={"appended": result.appended, "duplicates": result.duplicates},
        )


def build_consumer(
    settings: AuditSettings,
    store: AuditStore,
    topics: Mapping[str, tuple[type[Message], ...]] = AUDITED_TOPICS,
    erasures: AuditErasures | None = None,
    erasures_topic: str = MEMBER_ERASURES,
) -> EventConsumer:
    writer = AuditWriter(store)
    routes = {topic: Route(types, writer.handle) for topic, types in topics.items()}
    if erasures is not None:
        routes[erasures_topic] = Route((MemberErasureRequested,), erasures.handle)
        routes[settings.exports_topic] = Route((MemberExportRequested,), erasures.exports.handle)
    return EventConsumer(
        settings,
        group_id=settings.consumer_group,
        routes=routes,
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=writer.flush,
    )


async def run_consumer(
    settings: AuditSettings,
    store: AuditStore,
    stop: asyncio.Event,
    topics: Mapping[str, tuple[type[Message], ...]] = AUDITED_TOPICS,
    erasures: AuditErasures | None = None,
    erasures_topic: str = MEMBER_ERASURES,
) -> None:
    """Consume until `stop` is set, then finish the batch in hand, anchor the head once more and
    leave the group. The head is anchored outside PostgreSQL on a schedule meanwhile. With
    `erasures`, members' erasure requests are handled too (its producer is started here)."""
    consumer = build_consumer(settings, store, topics, erasures, erasures_topic)
    anchorer = Anchorer(settings, store)
    if erasures is not None:
        await erasures.start()
    await consumer.start()
    await anchorer.start()
    consumed = asyncio.Event()
    anchoring = asyncio.create_task(anchorer.run(consumed))
    task = asyncio.create_task(consumer.run())
    log.info("audit consumer started", extra={"group_id": settings.consumer_group})
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await consumer.stop()
        stopped.cancel()
        await task
    finally:
        consumed.set()  # the last batch is in: anchor it, then stop
        await anchoring
        await anchorer.stop()
        if erasures is not None:
            await erasures.stop()
