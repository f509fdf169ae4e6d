"""Encode and decode the versioned protobuf envelope that every Kafka record carries.

`decode` is also where a record is judged safe to hand to a service: every consumer (aiokafka or
Faust) decodes through it, so a record that would stop one later (a far-future timestamp that no
datetime or database column holds, a NUL that PostgreSQL text refuses, a record or list too big to
handle) is refused here with a dead-letter reason, once for all of them. Invalid UTF-8 in a string
field is refused by the protobuf parser itself (``undecodable_*``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import EnvelopeError
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.loans_pb2 import LoanDisbursed, LoanOutcome
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberErasureRequested,
    MemberExportPart,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.events.v1.models_pb2 import (
    ModelPerformanceAlert,
    ModelRegistryChanged,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged, ReviewOutcome

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
        AppealLodged,
        DriftAlert,
        LoanDisbursed,
        LoanOutcome,
        ModelRegistryChanged,
        ModelPerformanceAlert,
        MemberErasureRequested,
        MemberErasureCompleted,
        MemberExportRequested,
        MemberExportPart,
        DeadLetter,
    )
}

M = TypeVar("M", bound=Message)

#: the window every Timestamp of an envelope or payload must fall in (UTC, end excluded)
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)
#: the largest record value decoded (Kafka's default message size)
MAX_RECORD_BYTES = 1024 * 1024
#: the most entries of one repeated or map field
MAX_ITEMS = 10_000
#: the longest string field, in characters
MAX_STRING_CHARS = 64 * 1024

_EARLIEST_S = int(EARLIEST_TIMESTAMP.timestamp())
_LATEST_S = int(LATEST_TIMESTAMP.timestamp())


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
    if len(data) > MAX_RECORD_BYTES:
        raise EnvelopeError("record_too_large", f"{len(data)} bytes, more than {MAX_RECORD_BYTES}")
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
    validate_message(envelope)  # after the structure: the more specific reason wins
    validate_message(payload)
    return Event(envelope=envelope, payload=payload)  # type: ignore[arg-type]


def validate_message(message: Message) -> None:
    """Raise `EnvelopeError` unless every Timestamp of the message (nested, repeated and map
    values included) lies in [2000, 2100), no string holds a NUL or exceeds `MAX_STRING_CHARS`
    and no repeated or map field holds more than `MAX_ITEMS` entries.

    Every consumer runs this on every event, so a valid message takes the quick walk (no field
    paths built, numbers skipped by a per-field plan); only a message it finds at fault is
    walked again to name the field and the reason."""
    if not _valid(message):
        _validate(message, message.DESCRIPTOR.name)


# What the quick walk checks of a field, decided once per field descriptor.
_SKIP, _STRING, _MESSAGE, _REPEATED, _REPEATED_STRINGS, _REPEATED_MESSAGES, _MAP = range(7)
_PLAN: dict[FieldDescriptor, tuple[int, int, int]] = {}  # field -> (kind, key kind, value kind)


def _kind_of(field: FieldDescriptor) -> int:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _MESSAGE
    return _STRING if field.type == FieldDescriptor.TYPE_STRING else _SKIP


def _plan(field: FieldDescriptor) -> tuple[int, int, int]:
    plan = _PLAN.get(field)
    if plan is None:
        if _is_map(field):
            entry = field.message_type.fields_by_name
            plan = (_MAP, _kind_of(entry["key"]), _kind_of(entry["value"]))
        elif _is_repeated(field):
            kind = _kind_of(field)
            repeated = {_SKIP: _REPEATED, _STRING: _REPEATED_STRINGS, _MESSAGE: _REPEATED_MESSAGES}
            plan = (repeated[kind], _SKIP, _SKIP)
        else:
            plan = (_kind_of(field), _SKIP, _SKIP)
        _PLAN[field] = plan
    return plan


def _string_ok(value: str) -> bool:
    return "\x00" not in value and len(value) <= MAX_STRING_CHARS


def _item_ok(kind: int, value: Any) -> bool:
    if kind == _STRING:
        return _string_ok(value)
    if kind == _MESSAGE:
        return _valid(value)
    return True


def _valid(message: Message) -> bool:
    """True when `_validate` would find nothing wrong (it alone says what is)."""
    if isinstance(message, Timestamp):
        return _EARLIEST_S <= message.seconds < _LATEST_S and 0 <= message.nanos < 1_000_000_000
    for field, value in message.ListFields():
        kind, key_kind, value_kind = _plan(field)
        if kind == _SKIP:
            continue
        if kind == _STRING:
            if not _string_ok(value):
                return False
        elif kind == _MESSAGE:
            if not _valid(value):
                return False
        elif len(value) > MAX_ITEMS:
            return False
        elif kind == _REPEATED_STRINGS:
            if not all(_string_ok(item) for item in value):
                return False
        elif kind == _REPEATED_MESSAGES:
            if not all(_valid(item) for item in value):
                return False
        elif kind == _MAP and (key_kind != _SKIP or value_kind != _SKIP):
            for key, item in value.items():
                if not (_item_ok(key_kind, key) and _item_ok(value_kind, item)):
                    return False
    return True


def _validate(message: Message, path: str) -> None:
    if isinstance(message, Timestamp):
        _validate_timestamp(message, path)
        return
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        if _is_map(field):
            mapping: Mapping[Any, Any] = value
            _validate_count(len(mapping), where)
            value_field = field.message_type.fields_by_name["value"]
            for key, item in mapping.items():
                _validate_scalar(key, f"{where}[{key!r}]")
                _validate_value(value_field, item, f"{where}[{key!r}]")
        elif _is_repeated(field):
            _validate_count(len(value), where)
            for i, item in enumerate(value):
                _validate_value(field, item, f"{where}[{i}]")
        else:
            _validate_value(field, value, where)


def _validate_value(field: FieldDescriptor, value: Any, where: str) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _validate(value, where)
    else:
        _validate_scalar(value, where)


def _validate_scalar(value: Any, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise EnvelopeError("nul_in_string", f"{where} holds a NUL character")
        if len(value) > MAX_STRING_CHARS:
            raise EnvelopeError(
                "string_too_long", f"{where} holds {len(value)} characters (> {MAX_STRING_CHARS})"
            )


def _validate_count(count: int, where: str) -> None:
    if count > MAX_ITEMS:
        raise EnvelopeError("too_many_items", f"{where} holds {count} entries (> {MAX_ITEMS})")


def _validate_timestamp(stamp: Timestamp, where: str) -> None:
    if not _EARLIEST_S <= stamp.seconds < _LATEST_S or not 0 <= stamp.nanos < 1_000_000_000:
        raise EnvelopeError(
            "timestamp_out_of_range",
            f"{where} is {stamp.seconds}s {stamp.nanos}ns since 1970, outside"
            f" [{EARLIEST_TIMESTAMP:%Y-%m-%d}, {LATEST_TIMESTAMP:%Y-%m-%d})",
        )


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
