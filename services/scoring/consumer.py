"""Kafka wiring: micro-batch `loan.applications` into the scorer, publish `credit.decisions`.

Handlers only validate and buffer; the shared consumer's `on_batch` hook scores the polled batch
in one call and awaits every delivery before the offsets are committed, so a crash replays the
batch and the deterministic decision id (the event id) lets consumers downstream deduplicate.
Invalid applications and unknown members go to the dead-letter topic with their reason. An
application scoring decided synchronously and recorded on the topic (it carries its decision's id)
is not decided again: its record's header says so, so the consumer drops it without decoding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from services.common.applications import decided_header
from services.common.envelope import Event
from services.common.errors import InvalidEvent
from services.common.kafka import EventConsumer, Route
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.scoring.applications import RejectionCode, invalid_reasons
from services.scoring.metrics import ALREADY_DECIDED
from services.scoring.publisher import DecisionPublisher
from services.scoring.scorer import Scorer
from services.scoring.settings import ScoringSettings

tracer = trace.get_tracer("alama.scoring")


@dataclass(frozen=True)
class Pending:
    application: LoanApplicationSubmitted
    record: ConsumerRecord
    trace_context: Context  # the consumer span of this record, continued when publishing


class DecisionPipeline:
    """Buffers one polled batch of applications and turns it into decision events."""

    def __init__(
        self, settings: ScoringSettings, scorer: Scorer, publisher: DecisionPublisher
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.publisher = publisher
        self.pending: list[Pending] = []
        self.consumer: EventConsumer | None = None

    @staticmethod
    def decided_elsewhere(headers: Sequence[tuple[str, bytes]]) -> bool:
        """An application scoring decided synchronously, known from its record's header: the
        consumer commits it unread (counted here)."""
        if decided_header(headers):
            ALREADY_DECIDED.inc()
            return True
        return False

    async def handle(self, event: Event[Any], record: ConsumerRecord) -> None:
        application: LoanApplicationSubmitted = event.payload
        if application.decision_id:  # decided synchronously (recorded without the header)
            ALREADY_DECIDED.inc()
            return
        problems = invalid_reasons(application)
        if problems:
            raise InvalidEvent(RejectionCode.INVALID_APPLICATION.value, "; ".join(problems))
        self.pending.append(Pending(application, record, otel_context.get_current()))

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        size = self.settings.max_batch
        for start in range(0, len(batch), size):
            await self._flush_chunk(batch[start : start + size])

    async def _flush_chunk(self, chunk: list[Pending]) -> None:
        assert self.consumer is not None, "build_consumer wires the pipeline to its consumer"
        outcomes = await self.scorer.score([p.application for p in chunk], path="kafka")
        deliveries = []
        for item, outcome in zip(chunk, outcomes, strict=True):
            token = otel_context.attach(item.trace_context)
            try:
                if outcome.rejection is not None:
                    await self.consumer.dead_letter(
                        item.record, outcome.rejection.code.value, outcome.rejection.message
                    )
                    continue
                decision = outcome.to_publish
                if decision is not None:  # None: a standing decision the broker already has
                    deliveries.append(await self.publisher.publish(decision))
            finally:
                otel_context.detach(token)
        for delivery in deliveries:
            await delivery  # every decision is on the broker before the offsets commit
        self.scorer.published(outcomes)


def build_consumer(
    settings: ScoringSettings, scorer: Scorer, publisher: DecisionPublisher
) -> EventConsumer:
    """The shared consumer with scoring's route, publishing through the service's publisher."""
    pipeline = DecisionPipeline(settings, scorer, publisher)
    consumer = EventConsumer(
        settings,
        group_id=settings.consumer_group,
        routes={
            settings.applications_topic: Route(
                (LoanApplicationSubmitted,), pipeline.handle, skip=pipeline.decided_elsewhere
            )
        },
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=pipeline.flush,
    )
    pipeline.consumer = consumer
    return consumer
