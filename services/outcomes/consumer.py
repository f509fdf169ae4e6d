"""Kafka wiring: decisions, reviews, disbursements and repayments in; each loan's outcome out.
Also the challenger's decisions in shadow and each application's gender and age band, kept for
the shadow comparison (they change no outcome). Every row is filed under its member's keyed
pseudonym; members' erasure and export requests are answered as they come (`member_data`): an
erasure in a batch is done before the batch's rows are written, which the erased-members set then
holds back.

Handlers only buffer; a batch is written in one go, then every loan it touched (its own
instalments, its disbursement, or its application's decision arriving late) is judged by the
contract's rule, new outcomes are recorded, and everything recorded but not yet published goes
to `credit.loan_outcomes` before the batch's offsets commit. An outcome's event id is derived
from its loan, so a republished outcome is recognised downstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from aiokafka import ConsumerRecord

from services.common.envelope import Event, wrap
from services.common.kafka import EventConsumer, Route
from services.common.member_exports import ExportAnswer
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.loans_pb2 import LoanDisbursed, LoanOutcome
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureRequested,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.outcomes.member_data import OutcomesErasures, OutcomesHolder
from services.outcomes.metrics import OUTCOMES
from services.outcomes.rules import outcome_of
from services.outcomes.settings import OutcomesSettings
from services.outcomes.store import (
    ApplicantGroups,
    DecisionRow,
    InstalmentRow,
    LoanRow,
    OutcomeRow,
    OutcomesStore,
)

OUTCOME_NAMESPACE = uuid.UUID("6f1d3c8e-2a53-4f3e-9a55-0b7c4e1d2a90")


def outcome_event(row: OutcomeRow) -> LoanOutcome:
    outcome = LoanOutcome(
        loan_id=row.loan_id,
        application_id=row.application_id,
        decision_id=row.decision_id,
        model_version=row.model_version,
        tenant_id=row.tenant_id,
        defaulted=row.defaulted,
        max_days_late=row.max_days_late,
        instalments_observed=row.instalments_observed,
        probability_of_default=row.probability_of_default,
        band=row.band,  # type: ignore[arg-type]
        final_band=row.final_band or row.band,  # type: ignore[arg-type]
    )
    outcome.disbursed_at.FromDatetime(row.disbursed_at)
    outcome.outcome_at.FromDatetime(row.outcome_at)
    if row.applied_at is not None:
        outcome.applied_at.FromDatetime(row.applied_at)
    return outcome


def outcome_event_id(tenant: str, loan_id: str) -> str:
    return str(uuid.uuid5(OUTCOME_NAMESPACE, f"{tenant}\x1f{loan_id}"))


class OutcomeFeed:
    def __init__(
        self,
        store: OutcomesStore,
        send: Callable[[str, EventEnvelope], Awaitable[None]],
        outcomes_topic: str,
    ) -> None:
        self.store = store
        self.send = send
        self.outcomes_topic = outcomes_topic
        self._reset()

    def _reset(self) -> None:
        self.decisions: list[DecisionRow] = []
        self.reviews: list[tuple[str, str, str, int]] = []
        self.loans: list[LoanRow] = []
        self.instalments: list[InstalmentRow] = []
        self.shadow: list[DecisionRow] = []
        self.groups: list[ApplicantGroups] = []

    async def decision(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.decisions.append(self._decision_row(event.payload))

    async def shadow_decision(self, event: Event[Any], _record: ConsumerRecord) -> None:
        self.shadow.append(self._decision_row(event.payload))

    def _decision_row(self, d: CreditDecision) -> DecisionRow:
        return DecisionRow(
            tenant_id=d.tenant_id,
            application_id=d.application_id,
            decision_id=d.decision_id,
            model_version=d.model_version,
            probability_of_default=d.probability_of_default,
            band=int(d.band),
            applied_at=d.applied_at.ToDatetime(tzinfo=UTC) if d.HasField("applied_at") else None,
            decided_at=d.decided_at.ToDatetime(tzinfo=UTC),
            member_ref=self.store.ref(d.tenant_id, d.member_id),
        )

    async def application(self, event: Event[Any], _record: ConsumerRecord) -> None:
        """Only the protected attributes core banking sent for oversight, nothing else of the
        member's; an application that sent none is not kept at all."""
        a: LoanApplicationSubmitted = event.payload
        gender = a.attributes.get("gender", "")[:32]
        age_band = a.attributes.get("age_band", "")[:32]
        if gender or age_band:
            self.groups.append(
                ApplicantGroups(
                    a.tenant_id,
                    a.application_id,
                    gender,
                    age_band,
                    a.applied_at.ToDatetime(tzinfo=UTC) if a.HasField("applied_at") else None,
                    self.store.ref(a.tenant_id, a.member_id),
                )
            )

    async def review(self, event: Event[Any], _record: ConsumerRecord) -> None:
        r: ReviewOutcome = event.payload
        self.reviews.append((r.tenant_id, r.application_id, r.decision_id, int(r.final_band)))

    async def loan(self, event: Event[Any], _record: ConsumerRecord) -> None:
        loan: LoanDisbursed = event.payload
        if not loan.application_id:
            return  # a loan no application of Alama's led to: no decision to judge
        self.loans.append(
            LoanRow(
                tenant_id=loan.tenant_id,
                loan_id=loan.loan_id,
                application_id=loan.application_id,
                term_months=int(loan.term_months),
                principal_kes=loan.principal_kes,
                disbursed_at=loan.disbursed_at.ToDatetime(tzinfo=UTC),
                member_ref=self.store.ref(loan.tenant_id, loan.member_id),
            )
        )

    async def repayment(self, event: Event[Any], _record: ConsumerRecord) -> None:
        r: RepaymentRecorded = event.payload
        self.instalments.append(
            InstalmentRow(
                tenant_id=r.tenant_id,
                loan_id=r.loan_id,
                due_date=r.due_date.ToDatetime(tzinfo=UTC),
                days_late=int(r.days_late),
                recorded_at=r.recorded_at.ToDatetime(tzinfo=UTC),
                member_ref=self.store.ref(r.tenant_id, r.member_id),
            )
        )

    async def flush(self) -> None:
        decisions, reviews = self.decisions, self.reviews
        loans, instalments = self.loans, self.instalments
        shadow, groups = self.shadow, self.groups
        self._reset()
        await self.store.add_shadow_decisions(shadow)
        await self.store.add_applicant_groups(groups)
        await self.store.add_decisions(decisions)
        await self.store.add_reviews(reviews)
        await self.store.add_loans(loans)
        await self.store.add_instalments(instalments)
        touched = {(x.tenant_id, x.loan_id) for x in loans} | {
            (x.tenant_id, x.loan_id) for x in instalments
        }
        applications = {(d.tenant_id, d.application_id) for d in decisions} | {
            (t, a) for t, a, _, _ in reviews
        }
        if touched or applications:
            for pending in await self.store.pending(touched, applications):
                known = outcome_of(
                    pending.loan.disbursed_at, pending.loan.term_months, pending.instalments
                )
                if known is not None:
                    await self.store.record(pending, known)
        await self.publish()

    async def publish(self) -> None:
        """Everything recorded and not yet on the topic, acknowledged, then marked."""
        rows = await self.store.unpublished()
        for row in rows:
            envelope = wrap(
                outcome_event(row),
                producer="outcomes",
                subject=row.loan_id,
                event_id=outcome_event_id(row.tenant_id, row.loan_id),
            )
            await self.send(self.outcomes_topic, envelope)
            OUTCOMES.labels(row.tenant_id, "defaulted" if row.defaulted else "performing").inc()
        await self.store.mark_published([(r.tenant_id, r.loan_id) for r in rows])


def build_consumer(
    settings: OutcomesSettings,
    store: OutcomesStore,
    send: Callable[[str, EventEnvelope], Awaitable[None]],
) -> EventConsumer:
    feed = OutcomeFeed(store, send, settings.outcomes_topic)
    erasures = OutcomesErasures(
        store, send, settings.erasures_completed_topic, settings.service_name
    )
    exports = ExportAnswer(
        [OutcomesHolder(store)], send, settings.export_parts_topic, settings.service_name
    )
    return EventConsumer(
        settings,
        group_id=settings.consumer_group,
        routes={
            settings.decisions_topic: Route((CreditDecision,), feed.decision),
            settings.review_outcomes_topic: Route((ReviewOutcome,), feed.review),
            settings.loans_topic: Route((LoanDisbursed,), feed.loan),
            settings.repayments_topic: Route((RepaymentRecorded,), feed.repayment),
            settings.shadow_topic: Route((CreditDecision,), feed.shadow_decision),
            settings.applications_topic: Route((LoanApplicationSubmitted,), feed.application),
            settings.erasures_topic: Route((MemberErasureRequested,), erasures.handle),
            settings.exports_topic: Route((MemberExportRequested,), exports.handle),
        },
        consumer_options={"max_poll_records": settings.max_batch},
        on_batch=feed.flush,
    )
