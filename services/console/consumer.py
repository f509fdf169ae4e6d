"""Kafka wiring: the console keeps its own copy of what it shows from the topics.

`loan.applications` gives each application's amount and product (the four-eyes rule needs the
amount), `credit.decisions` every decision (oversight counts, similar decisions) and puts those
in band review into the queue. Handlers only buffer; the batch is written in one go before the
offsets commit, applications first, and a replayed batch stores nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from services.common.envelope import Event
from services.common.errors import InvalidEvent
from services.common.kafka import EventConsumer, Route
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged
from services.console.settings import ConsoleSettings
from services.console.store import ConsoleStore


class QueueFeed:
    def __init__(self, store: ConsoleStore) -> None:
        self.store = store
        self.applications: list[LoanApplicationSubmitted] = []
        self.decisions: list[CreditDecision] = []

    async def application(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.applications.append(event.payload)

    async def decision(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.decisions.append(event.payload)

    async def appeal(self, event: Event[Any], _record: ConsumerRecord) -> None:
        """An appeal lodged through the API (or this console: then already applied)."""
        appeal: AppealLodged = event.payload
        opened = await self.store.add_appeal(
            tenant=appeal.tenant_id,
            decision_id=appeal.decision_id,
            appeal_id=appeal.appeal_id,
            lodged_by=appeal.lodged_by,
            channel=appeal.channel,
            grounds=appeal.grounds,
        )
        if opened is None:
            raise InvalidEvent(
                "unknown_decision",
                f"the console has no decision {appeal.decision_id!r} of tenant"
                f" {appeal.tenant_id!r} to put back in the queue",
            )

    async def flush(self) -> None:
        applications, self.applications = self.applications, []
        decisions, self.decisions = self.decisions, []
        await self.store.add_applications(applications)
        await self.store.add_decisions(decisions, entered_at=datetime.now(UTC))


def build_consumer(settings: ConsoleSettings, store: ConsoleStore) -> EventConsumer:
    feed = QueueFeed(store)
    return EventConsumer(
        settings,
        group_id=settings.consumer_group,
        routes={
            settings.applications_topic: Route((LoanApplicationSubmitted,), feed.application),
            settings.decisions_topic: Route((CreditDecision,), feed.decision),
            settings.appeals_topic: Route((AppealLodged,), feed.appeal),
        },
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=feed.flush,
    )
