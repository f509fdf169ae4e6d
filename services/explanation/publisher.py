"""Publish explanations to `credit.explanations`, each under its own PRODUCER span.

The event id is derived from the decision id, so an explanation published again after a replay
is the same event to everyone downstream. Records are keyed by application id: the member id
is personal data and an explanation carries none (audit keeps the key as the event's subject).
"""

from __future__ import annotations

import asyncio
from datetime import UTC

from aiokafka.structs import RecordMetadata

from services.common.envelope import wrap
from services.common.kafka import create_producer, publish_traced
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.explanation.explainer import explanation_id
from services.explanation.settings import ExplanationSettings


class ExplanationPublisher:
    def __init__(self, settings: ExplanationSettings) -> None:
        self.settings = settings
        self.topic = settings.explanations_topic
        self.producer = create_producer(
            settings.infra, client_id=f"{settings.service_name}-explanations"
        )
        self._started = False

    async def start(self) -> None:
        await self.producer.start()
        self._started = True

    async def stop(self) -> None:
        """Flush what is queued, then close."""
        if self._started:
            self._started = False
            await self.producer.flush()
            await self.producer.stop()

    async def publish(self, explanation: CreditExplanation) -> asyncio.Future[RecordMetadata]:
        """Queue one explanation under the current trace; await the result for its delivery."""
        envelope = wrap(
            explanation,
            producer=self.settings.service_name,
            subject=explanation.application_id,
            event_id=explanation_id(explanation.decision_id),
            occurred_at=explanation.explained_at.ToDatetime(tzinfo=UTC),
        )
        return await publish_traced(self.producer, self.topic, envelope)
