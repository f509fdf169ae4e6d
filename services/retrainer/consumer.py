"""Kafka wiring: applications and loan outcomes kept, drift and performance alerts recorded as
triggers; a batch is written in one go before its offsets commit. Members' erasure and export
requests are answered as they come (`member_data`): an erasure in a batch is done before the
batch's applications are written, which the erased-members set then holds back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from aiokafka import ConsumerRecord

from services.common.envelope import Event
from services.common.kafka import EventConsumer, Route
from services.common.member_exports import ExportAnswer
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureRequested,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.models_pb2 import ModelPerformanceAlert
from services.common.vocabulary import PRODUCTS
from services.retrainer.member_data import RetrainerErasures, RetrainerHolder
from services.retrainer.metrics import ALERTS
from services.retrainer.settings import RetrainerSettings
from services.retrainer.store import ApplicationRow, OutcomeRow, RetrainerStore, Trigger


class RetrainerFeed:
    def __init__(self, store: RetrainerStore) -> None:
        self.store = store
        self._reset()

    def _reset(self) -> None:
        self.applications: list[ApplicationRow] = []
        self.outcomes: list[OutcomeRow] = []
        self.triggers: list[Trigger] = []

    async def application(self, event: Event[Any], _record: ConsumerRecord) -> None:
        a: LoanApplicationSubmitted = event.payload
        self.applications.append(
            ApplicationRow(
                tenant_id=a.tenant_id,
                application_id=a.application_id,
                member_id=a.member_id,
                product=PRODUCTS.name_or(a.product, ""),
                amount_kes=a.amount_kes,
                term_months=int(a.term_months),
                applied_at=a.applied_at.ToDatetime(tzinfo=UTC),
            )
        )

    async def outcome(self, event: Event[Any], _record: ConsumerRecord) -> None:
        o: LoanOutcome = event.payload
        self.outcomes.append(
            OutcomeRow(
                tenant_id=o.tenant_id,
                application_id=o.application_id,
                loan_id=o.loan_id,
                defaulted=o.defaulted,
                outcome_at=o.outcome_at.ToDatetime(tzinfo=UTC),
            )
        )

    async def drift(self, event: Event[Any], _record: ConsumerRecord) -> None:
        d: DriftAlert = event.payload
        ALERTS.labels("drift").inc()
        self.triggers.append(
            Trigger(
                trigger_id=f"drift:{d.alert_id}",
                kind="drift",
                detail={
                    "model_version": d.model_version,
                    "subject": d.subject,
                    "psi": round(d.psi, 4),
                },
                raised_at=d.raised_at.ToDatetime(tzinfo=UTC),
            )
        )

    async def performance(self, event: Event[Any], _record: ConsumerRecord) -> None:
        p: ModelPerformanceAlert = event.payload
        ALERTS.labels("performance").inc()
        self.triggers.append(
            Trigger(
                trigger_id=f"performance:{p.alert_id}",
                kind="performance",
                detail={
                    "model_version": p.model_version,
                    "metric": p.metric,
                    "value": round(p.value, 4),
                    "month": p.month,
                },
                raised_at=p.raised_at.ToDatetime(tzinfo=UTC),
            )
        )

    async def flush(self) -> None:
        applications, outcomes, triggers = self.applications, self.outcomes, self.triggers
        self._reset()
        await self.store.add_applications(applications)
        await self.store.add_outcomes(outcomes)
        await self.store.add_triggers(triggers)


def build_consumer(
    settings: RetrainerSettings,
    store: RetrainerStore,
    send: Callable[[str, EventEnvelope], Awaitable[None]] | None = None,
) -> EventConsumer:
    """`send` publishes the answers to members' erasure and export requests (on the broker
    before the request's offset commits); without it the retrainer takes no part in members'
    rights (tests of the retraining alone)."""
    feed = RetrainerFeed(store)
    rights: dict[str, Route] = {}
    if send is not None:
        erasures = RetrainerErasures(
            store, send, settings.erasures_completed_topic, settings.service_name
        )
        exports = ExportAnswer(
            [RetrainerHolder(store)], send, settings.export_parts_topic, settings.service_name
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
            settings.outcomes_topic: Route((LoanOutcome,), feed.outcome),
            settings.drift_alerts_topic: Route((DriftAlert,), feed.drift),
            settings.performance_alerts_topic: Route((ModelPerformanceAlert,), feed.performance),
            **rights,
        },
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=feed.flush,
    )
