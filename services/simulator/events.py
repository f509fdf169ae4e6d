"""The Kafka events core banking publishes: RepaymentRecorded and LoanApplicationSubmitted.

Event ids are uuid5 of the row id in the world's namespace (the same one `world_events` uses), so
re-running a scenario, or replaying the world, publishes the same ids and consumers deduplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd

from services.common.envelope import wrap
from services.common.protos.alama.events.v1 import applications_pb2, repayments_pb2
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.simulator.scenario import ApplicationRequest
from training.world import hash_national_id

PRODUCER = "core-banking"


def world_namespace(seed: int, n_members: int) -> uuid.UUID:
    """The event-id namespace of a world; it must match `training.world.world_events`."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://alama.local/world/{seed}/{n_members}")


def repayment_event_id(namespace: uuid.UUID, repayment_id: str) -> str:
    return str(uuid.uuid5(namespace, f"repayment/{repayment_id}"))


def application_event_id(namespace: uuid.UUID, application_id: str) -> str:
    return str(uuid.uuid5(namespace, f"application/{application_id}"))


def _utc(moment: pd.Timestamp | datetime) -> datetime:
    return pd.Timestamp(moment).to_pydatetime().astimezone(UTC)


def repayment_envelopes(repayments: pd.DataFrame, namespace: uuid.UUID) -> Iterator[EventEnvelope]:
    """One RepaymentRecorded envelope per row of `scenario.repayment_history`."""
    columns = (
        "repayment_id",
        "member_id",
        "loan_id",
        "due_date",
        "amount_due_kes",
        "amount_paid_kes",
        "days_late",
        "recorded_at",
    )
    for rid, member, loan, due, amount_due, paid, late, recorded in zip(
        *(repayments[c].tolist() for c in columns), strict=True
    ):
        message = repayments_pb2.RepaymentRecorded(
            repayment_id=rid,
            member_id=str(member),
            loan_id=str(loan),
            amount_due_kes=float(amount_due),
            amount_paid_kes=float(paid),
            days_late=int(late),
        )
        message.due_date.FromDatetime(_utc(due))
        message.recorded_at.FromDatetime(_utc(recorded))
        yield wrap(
            message,
            producer=PRODUCER,
            subject=str(member),
            event_id=repayment_event_id(namespace, rid),
            occurred_at=_utc(recorded),
        )


def application_envelope(application: ApplicationRequest, namespace: uuid.UUID) -> EventEnvelope:
    """LoanApplicationSubmitted as core banking publishes it; the national id travels only as the
    world's keyed hash. The envelope time is applied_at, so a re-run sends identical bytes."""
    message = applications_pb2.LoanApplicationSubmitted(
        application_id=application.application_id,
        member_id=application.member_id,
        sacco_id=application.sacco_id,
        product=applications_pb2.LoanProduct.Value(f"LOAN_PRODUCT_{application.product.upper()}"),
        amount_kes=application.amount_kes,
        term_months=application.term_months,
        channel=applications_pb2.Channel.Value(f"CHANNEL_{application.channel.upper()}"),
        declared_monthly_income_kes=application.declared_monthly_income_kes,
        national_id_hash=hash_national_id(application.national_id),
    )
    message.applied_at.FromDatetime(application.applied_at)
    return wrap(
        message,
        producer=PRODUCER,
        subject=application.member_id,
        event_id=application_event_id(namespace, application.application_id),
        occurred_at=application.applied_at,
    )
