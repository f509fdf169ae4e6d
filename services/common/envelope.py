"""Encode and decode the versioned protobuf envelope that every Kafka record carries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from services.common.errors import EnvelopeError
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

PAYLOAD_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        LoanApplicationSubmitted,
        RepaymentRecorded,
        MobileMoneyTransaction,
        CreditDecision,
        CreditExplanation,
        ReviewOutcome,
        DriftAlert,
        DeadLetter,
    )
}

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Event(Generic[M]):
    envelope: EventEnvelope
    payload: M

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def occurred_at(self) -> datetime:
        return self.envelope.occurred_at.ToDatetime(tzinfo=UTC)


def wrap(
    payload: Message,
    *,
    producer: str,
    subject: str = "",
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> EventEnvelope:
    """Put a payload in an envelope; pass `event_id` when it must be deterministic."""
    full_name = payload.DESCRIPTOR.full_name
    if full_name not in PAYLOAD_TYPES:
        raise ValueError(f"{full_name} is not an Alama event payload")
    envelope = EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        producer=producer,
        schema_version=SCHEMA_VERSION,
        payload_type=full_name,
        payload=payload.SerializeToString(deterministic=True),
        subject=subject,
    )
    envelope.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    return envelope


def encode(envelope: EventEnvelope) -> bytes:
    return envelope.SerializeToString(deterministic=True)


def decode(data: bytes | None, expected: tuple[type[M], ...] | type[M] | None = None) -> Event[M]:
    """Parse a record value; raise `EnvelopeError` with a dead-letter reason when it is unusable."""
    if not data:
        raise EnvelopeError("empty_record", "the record has no value")
    envelope = EventEnvelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise EnvelopeError("undecodable_envelope", f"not an EventEnvelope: {exc}") from exc
    if not envelope.event_id or not envelope.payload_type:
        raise EnvelopeError("missing_field", "envelope lacks event_id or payload_type")
    if envelope.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise EnvelopeError(
            "unsupported_schema_version",
            f"schema version {envelope.schema_version} of {envelope.payload_type}",
        )
    cls = PAYLOAD_TYPES.get(envelope.payload_type)
    if cls is None:
        raise EnvelopeError("unknown_payload_type", envelope.payload_type)
    allowed = expected if isinstance(expected, tuple) else (expected,) if expected else None
    if allowed is not None and cls not in allowed:
        names = ", ".join(c.DESCRIPTOR.full_name for c in allowed)
        raise EnvelopeError(
            "unexpected_payload_type", f"{envelope.payload_type} where {names} was expected"
        )
    payload = cls()
    try:
        payload.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise EnvelopeError("undecodable_payload", f"{envelope.payload_type}: {exc}") from exc
    return Event(envelope=envelope, payload=payload)  # type: ignore[arg-type]
