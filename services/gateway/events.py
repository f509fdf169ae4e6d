"""The events the gateway publishes, built from validated requests with personal data hashed.

Event ids are deterministic (uuid5 of what identifies the event), so a client's or provider's
retry of the same application or transaction is deduplicated by every idempotent consumer.
"""

from __future__ import annotations

import uuid

from services.common import applications as application_events
from services.common.appeals import appeal_lodged
from services.common.applications import EVENT_NAMESPACE
from services.common.envelope import wrap
from services.common.members import member_key
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.gateway.schemas import Application, Transaction
from services.gateway.security import normalise_national_id, normalise_phone, pseudonymise
from services.gateway.settings import GatewaySettings

PRODUCER = "gateway"


def application_message(
    settings: GatewaySettings, application: Application, tenant: str
) -> LoanApplicationSubmitted:
    """The protobuf application of the caller's tenant; the national id only as its keyed
    hash."""
    national_id_hash = (
        pseudonymise(settings, normalise_national_id(application.national_id))
        if application.national_id
        else ""
    )
    message = application.to_proto(national_id_hash)
    message.tenant_id = tenant
    return message


def application_envelope(
    settings: GatewaySettings, application: Application, tenant: str
) -> EventEnvelope:
    return application_events.application_envelope(
        application_message(settings, application, tenant), producer=PRODUCER
    )


def transaction_envelope(
    settings: GatewaySettings, tenant: str, transaction: Transaction
) -> EventEnvelope:
    """One MobileMoneyTransaction of `tenant`'s member (the tenant whose secret signed the
    delivery); the counterparty's phone only as the hash of its one form."""
    counterparty_hash = (
        pseudonymise(settings, normalise_phone(transaction.counterparty_phone))
        if transaction.counterparty_phone
        else ""
    )
    message = transaction.to_proto(counterparty_hash)
    message.tenant_id = tenant
    key = f"mobile-money/{tenant}/{transaction.provider}/{transaction.transaction_id}"
    return wrap(
        message,
        producer=PRODUCER,
        subject=member_key(tenant, message.member_id),  # partitions like the tables
        event_id=str(uuid.uuid5(EVENT_NAMESPACE, key)),
        occurred_at=transaction.occurred_at,
    )


def appeal_envelope(decision: CreditDecision, grounds: str, *, lodged_by: str) -> EventEnvelope:
    """A member's appeal lodged through the API; its event id is the appeal id."""
    appeal = appeal_lodged(decision, lodged_by=lodged_by, channel="api", grounds=grounds)
    return wrap(
        appeal, producer="gateway", subject=decision.application_id, event_id=appeal.appeal_id
    )
