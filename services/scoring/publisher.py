"""Publish decisions to `credit.decisions`: the Kafka path waits for delivery, gRPC does not.

Every decision, whichever path made it, becomes an event, so explanation and audit see decisions
a loan officer asked for synchronously too. The decision id is the event id, so a decision made
twice (an application scored over gRPC and over Kafka, or a replayed batch) is deduplicated
downstream. The gRPC path only queues its events (a synchronous caller must not wait for the
broker) and `stop()` flushes what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.structs import RecordMetadata

from services.common.envelope import wrap
from services.common.kafka import create_producer, publish_traced
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.scoring.metrics import UNDELIVERED
from services.scoring.settings import ScoringSettings

log = logging.getLogger(__name__)


class DecisionPublisher:
    def __init__(self, settings: ScoringSettings) -> None:
        self.settings = settings
        self.topic = settings.decisions_topic
        self.producer = create_producer(
            settings.infra, client_id=f"{settings.service_name}-decisions"
        )
        self._in_flight: set[asyncio.Future[RecordMetadata]] = set()

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        """Deliver everything queued, then close."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.producer.stop()

    async def publish(self, decision: CreditDecision) -> asyncio.Future[RecordMetadata]:
        """Queue one decision under the current trace; await the result for its delivery."""
        envelope = wrap(
            decision,
            producer=self.settings.service_name,
            subject=decision.member_id,
            event_id=decision.decision_id,
        )
        return await publish_traced(self.producer, self.topic, envelope)

    async def publish_detached(self, decisions: Iterable[CreditDecision]) -> None:
        """Queue decisions without waiting for the broker; failures are logged and counted."""
        for decision in decisions:
            delivery = await self.publish(decision)
            self._in_flight.add(delivery)
            delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future[RecordMetadata]) -> None:
        self._in_flight.discard(delivery)
        if not delivery.cancelled() and delivery.exception() is not None:
            UNDELIVERED.inc()
            log.error("a synchronous decision was not delivered", exc_info=delivery.exception())
