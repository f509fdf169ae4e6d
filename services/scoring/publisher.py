"""Publish decisions to `credit.decisions`; both paths wait for the broker's acknowledgement.

Every decision, whichever path made it, becomes an event, so explanation and audit see decisions
a loan officer asked for synchronously too; a synchronous decision's application is recorded on
`loan.applications` beside it (marked with the decision's id, so the scoring consumer does not
decide it again), so the audit chain, the console's fairness tables, outcomes and the retrainer
see every application whichever path decided it. The decision id is the event id, so a decision made
twice (an application scored over gRPC and over Kafka, or a replayed batch) is deduplicated
downstream. A synchronous caller is told a decision only once the broker holds it
(`publish_durably`): a crash right after the reply cannot lose it. The cost stays small because
the decisions of the calls that arrive while a request is in flight go together in the next one
(`publish_linger_ms` only adds a wait before each, so it is short). The challenger's decisions go
through the same producer to the shadow topic (`publish_shadow`), nobody waiting on them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.structs import RecordMetadata

from services.common.applications import DECIDED_HEADER, application_envelope
from services.common.envelope import wrap
from services.common.kafka import create_producer, publish_many, publish_traced
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.scoring.metrics import UNDELIVERED
from services.scoring.settings import ScoringSettings

log = logging.getLogger(__name__)


class DecisionPublisher:
    def __init__(self, settings: ScoringSettings) -> None:
        self.settings = settings
        self.topic = settings.decisions_topic
        self.applications_topic = settings.applications_topic
        self.shadow_topic = settings.shadow_topic
        self.producer = create_producer(
            settings.infra,
            client_id=f"{settings.service_name}-decisions",
            linger_ms=settings.publish_linger_ms,
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        """Deliver everything queued, then close."""
        await self.producer.stop()

    def _envelope(self, decision: CreditDecision) -> EventEnvelope:
        return wrap(
            decision,
            producer=self.settings.service_name,
            subject=decision.member_id,
            event_id=decision.decision_id,
        )

    def _recorded(
        self, application: LoanApplicationSubmitted, decision: CreditDecision
    ) -> EventEnvelope:
        """The application as decided synchronously: marked with its decision's id."""
        recorded = LoanApplicationSubmitted()
        recorded.CopyFrom(application)
        recorded.decision_id = decision.decision_id
        return application_envelope(recorded, producer=self.settings.service_name)

    async def publish(
        self, decision: CreditDecision, *, topic: str | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one decision under the current trace; await the result for its delivery."""
        return await publish_traced(self.producer, topic or self.topic, self._envelope(decision))

    async def publish_shadow(self, decision: CreditDecision) -> asyncio.Future[RecordMetadata]:
        """Queue one of the challenger's decisions on the shadow topic (nothing acts on it)."""
        return await self.publish(decision, topic=self.shadow_topic)

    async def publish_durably(
        self, decided: Iterable[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> None:
        """Return once the broker has acknowledged every decision and its application (both
        queued at once, so the wait is one round trip); raise `NotRecorded` when it has not
        within `publish_timeout_seconds` (the caller must not be told them)."""
        pairs = list(decided)
        if not pairs:
            return
        # one span per topic for the call's decisions, not one per record (publish_many)
        deliveries = await publish_many(
            self.producer, self.topic, [self._envelope(d) for _, d in pairs]
        )
        deliveries += await publish_many(
            self.producer,
            self.applications_topic,
            [self._recorded(application, decision) for application, decision in pairs],
            # the scoring consumer drops these unread (it has nothing to decide)
            headers=[[(DECIDED_HEADER, d.decision_id.encode())] for _, d in pairs],
        )
        try:
            async with asyncio.timeout(self.settings.publish_timeout_seconds):
                await asyncio.gather(*deliveries)
        except Exception as exc:
            UNDELIVERED.inc(len(pairs))
            log.warning("decisions not acknowledged by the broker", exc_info=exc)
            raise NotRecorded(
                "the decision could not be recorded; retry (the same application and content"
                " get the same decision)"
            ) from exc


class NotRecorded(RuntimeError):
    """The broker did not acknowledge a decision in time: nobody may be told it."""
