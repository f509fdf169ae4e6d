"""Kafka wiring: the console keeps its own copy of what it shows from the topics.

`loan.applications` gives each application's amount and product (the four-eyes rule needs the
amount), `credit.decisions` every decision (oversight counts, similar decisions) and puts those
in band review into the queue, `credit.loan_outcomes` how approved loans turned out (equal
opportunity on the oversight page). Handlers only buffer; the batch is written in one go before the
offsets commit, applications first, and a replayed batch stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from services.common.envelope import Event
from services.common.errors import InvalidEvent
from services.common.kafka import EventConsumer, Route
from services.common.member_exports import ExportAnswer
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureRequested,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged
from services.console.member_data import ConsoleErasures, ConsoleHolder
from services.console.settings import ConsoleSettings
from services.console.store import ConsoleStore


class QueueFeed:
    def __init__(self, store: ConsoleStore) -> None:
        self.store = store
        self.applications: list[LoanApplicationSubmitted] = []
        self.decisions: list[CreditDecision] = []
        self.outcomes: list[LoanOutcome] = []

    async def application(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.applications.append(event.payload)

    async def decision(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.decisions.append(event.payload)

    async def outcome(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.outcomes.append(event.payload)

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
        outcomes, self.outcomes = self.outcomes, []
        await self.store.add_loan_outcomes(outcomes)


def build_consumer(
    settings: ConsoleSettings,
    store: ConsoleStore,
    send: Callable[[str, EventEnvelope], Awaitable[None]] | None = None,
) -> EventConsumer:
    """`send` publishes the console's answers to members' erasure and export requests (on
    the broker before the request's offset commits); without it the console does not take
    part in members' rights (tests of the queue alone)."""
    feed = QueueFeed(store)
    rights: dict[str, Route] = {}
    if send is not None:
        erasures = ConsoleErasures(
            store, send, settings.erasures_completed_topic, settings.service_name
        )
        exports = ExportAnswer(
            [ConsoleHolder(store)], send, settings.export_parts_topic, settings.service_name
        )
        rights = {
            settings.erasures_topic: Route((MemberErasureRequested,), erasures.handle),
            settings.exports_topic: Route((MemberExportRequested,), exports.handle),
        }
    return EventConsumer(
        settings,
        group_id=settings.consumer_group,
        routes={
            settings.applications_topic: Route((LoanApplicationSubmitted,), feed.application),
            settings.decisions_topic: Route((CreditDecision,), feed.decision),
            settings.appeals_topic: Route((AppealLodged,), feed.appeal),
            settings.loan_outcomes_topic: Route((LoanOutcome,), feed.outcome),
            **rights,
        },
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=feed.flush,
    )
