"""Kafka wiring: explain each polled batch of `credit.decisions`, store it, publish explanations.

Handlers only validate and buffer (an unknown model version or a malformed feature map is a
dead letter with its reason); the shared consumer's `on_batch` hook explains the whole batch in
a worker thread, writes decisions and explanations in one transaction, and awaits every delivery
before the offsets are committed. A crash replays the batch: the store ignores what it has and
the same explanation events (same ids, same bytes) go out again for downstream to deduplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from services.common.envelope import Event
from services.common.errors import InvalidEvent
from services.common.kafka import EventConsumer, Route, publish_traced, trace_id_from_headers
from services.common.member_exports import ExportAnswer
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureRequested,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.explanation.erasures import DecisionErasures
from services.explanation.explainer import ExplainerPool
from services.explanation.member_data import DecisionsHolder
from services.explanation.publisher import ExplanationPublisher
from services.explanation.settings import ExplanationSettings
from services.explanation.store import DecisionStore, StoredDecision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    decision: CreditDecision
    record: ConsumerRecord
    trace_context: Context  # the consumer span of this record, continued when publishing


class ExplanationPipeline:
    """Buffers one polled batch of decisions and turns it into stored, published explanations."""

    def __init__(
        self, explainer: ExplainerPool, store: DecisionStore, publisher: ExplanationPublisher
    ) -> None:
        self.explainer = explainer
        self.store = store
        self.publisher = publisher
        self.pending: list[Pending] = []
        self.consumer: EventConsumer | None = None

    async def handle(self, event: Event[Any], record: ConsumerRecord) -> None:
        decision: CreditDecision = event.payload
        await self.explainer.check(decision)  # InvalidEvent: dead-lettered with its reason
        self.pending.append(Pending(decision, record, otel_context.get_current()))

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        unique: dict[str, Pending] = {}
        for item in batch:  # the same decision twice in one batch is explained once
            unique.setdefault(item.decision.decision_id, item)
        items = list(unique.values())
        outcomes = await self.explainer.explain(
            [p.decision for p in items], explained_at=datetime.now(UTC), path="kafka", checked=True
        )
        explained: list[Pending] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.error is not None:  # e.g. its bundle vanished since the handler checked
                await self._dead_letter(item, outcome.error.reason, outcome.error.detail)
            else:
                explained.append(item)
        stored = await self.store.save_batch(
            [
                StoredDecision(p.decision, trace_id_from_headers(p.record.headers))
                for p in explained
            ],
            [o.explanation for o in outcomes if o.explanation is not None],
        )
        deliveries = []
        for item in explained:
            if item.decision.decision_id not in stored:
                continue  # an erased member's decision from before the erasure: not stored
            token = otel_context.attach(item.trace_context)
            try:
                deliveries.append(await self.publisher.publish(stored[item.decision.decision_id]))
            finally:
                otel_context.detach(token)
        for delivery in deliveries:
            await delivery  # every explanation is on the broker before the offsets commit
        log.debug("explained a batch", extra={"decisions": len(batch), "explained": len(stored)})

    async def _dead_letter(self, item: Pending, reason: str, detail: str) -> None:
        assert self.consumer is not None, "build_consumer wires the pipeline to its consumer"
        token = otel_context.attach(item.trace_context)
        try:
            await self.consumer.dead_letter(item.record, reason, detail)
        finally:
            otel_context.detach(token)


class ReviewKeeper:
    """Keeps each person's review of a decision, so `GetDecision` reports the outcome."""

    def __init__(self, store: DecisionStore) -> None:
        self.store = store

    async def handle(self, event: Event[Any], _record: ConsumerRecord) -> None:
        review: ReviewOutcome = event.payload
        if not review.review_id or not review.decision_id:
            raise InvalidEvent("review_incomplete", "a review needs its review and decision ids")
        await self.store.save_review(review)


def build_consumer(
    settings: ExplanationSettings,
    explainer: ExplainerPool,
    store: DecisionStore,
    publisher: ExplanationPublisher,
) -> EventConsumer:
    """The shared consumer on the decisions topic, publishing through the service's publisher."""
    pipeline = ExplanationPipeline(explainer, store, publisher)
    erasures = DecisionErasures(
        store, publisher.producer, settings.erasures_completed_topic, settings.service_name
    )

    async def send(topic: str, envelope: EventEnvelope) -> None:
        await (await publish_traced(publisher.producer, topic, envelope))

    # a member's export: the tenant's decisions with their explanations, as the CLI exports them
    exports = ExportAnswer(
        [DecisionsHolder(store)], send, settings.export_parts_topic, settings.service_name
    )
    reviews = ReviewKeeper(store)
    consumer = EventConsumer(
        settings,
        group_id=settings.consumer_group,
        routes={
            settings.decisions_topic: Route((CreditDecision,), pipeline.handle),
            settings.erasures_topic: Route((MemberErasureRequested,), erasures.handle),
            settings.exports_topic: Route((MemberExportRequested,), exports.handle),
            settings.review_outcomes_topic: Route((ReviewOutcome,), reviews.handle),
        },
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=pipeline.flush,
    )
    pipeline.consumer = consumer
    return consumer
