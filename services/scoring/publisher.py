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

from services.common.applications import application_envelope
from services.common.envelope import wrap
from services.common.kafka import create_producer, publish_traced
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
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

    async def publish(
        self, decision: CreditDecision, *, topic: str | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one decision under the current trace; await the result for its delivery."""
        envelope = wrap(
            decision,
            producer=self.settings.service_name,
            subject=decision.member_id,
            event_id=decision.decision_id,
        )
        return await publish_traced(self.producer, topic or self.topic, envelope)

    async def publish_shadow(self, decision: CreditDecision) -> asyncio.Future[RecordMetadata]:
        """Queue one of the challenger's decisions on the shadow topic (nothing acts on it)."""
        return await self.publish(decision, topic=self.shadow_topic)

    async def record_application(
        self, application: LoanApplicationSubmitted, decision: CreditDecision
    ) -> asyncio.Future[RecordMetadata]:
        """Queue a synchronously decided application on loan.applications, marked decided."""
        recorded = LoanApplicationSubmitted()
        recorded.CopyFrom(application)
        recorded.decision_id = decision.decision_id
        envelope = application_envelope(recorded, producer=self.settings.service_name)
        return await publish_traced(self.producer, self.applications_topic, envelope)

    async def publish_durably(
        self, decided: Iterable[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> None:
        """Return once the broker has acknowledged every decision and its application (both
        queued at once, so the wait is one round trip); raise `NotRecorded` when it has not
        within `publish_timeout_seconds` (the caller must not be told them)."""
        deliveries = []
        for application, decision in decided:
            deliveries.append(await self.publish(decision))
            deliveries.append(await self.record_application(application, decision))
        if not deliveries:
            return
        try:
            async with asyncio.timeout(self.settings.publish_timeout_seconds):
                await asyncio.gather(*deliveries)
        except Exception as exc:
            UNDELIVERED.inc(len(deliveries) // 2)
            log.warning("decisions not acknowledged by the broker", exc_info=exc)
            raise NotRecorded(
                "the decision could not be recorded; retry (the same application and content"
                " get the same decision)"
            ) from exc


class NotRecorded(RuntimeError):
    """The broker did not acknowledge a decision in time: nobody may be told it."""
