from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.envelope import PAYLOAD_TYPES, SCHEMA_VERSION, decode, encode, wrap
from services.common.errors import EnvelopeError
from services.common.protos.alama.events.v1.applications_pb2 import (
    LOAN_PRODUCT_SCHOOL_FEES,
    LoanApplicationSubmitted,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.scoring.v1.scoring_pb2 import ScoreRequest


def application() -> LoanApplicationSubmitted:
    msg = LoanApplicationSubmitted(
        application_id="app-1",
        member_id="m-1",
        sacco_id="sacco-1",
        product=LOAN_PRODUCT_SCHOOL_FEES,
        amount_kes=45_000.0,
        term_months=12,
    )
    msg.applied_at.FromDatetime(datetime(2026, 1, 15, tzinfo=UTC))
    return msg


def test_round_trip_keeps_payload_and_metadata() -> None:
    at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    envelope = wrap(application(), producer="core-banking", subject="app-1", occurred_at=at)
    event = decode(encode(envelope), LoanApplicationSubmitted)
    assert event.payload == application()
    assert event.envelope.producer == "core-banking"
    assert event.envelope.schema_version == SCHEMA_VERSION
    assert event.envelope.payload_type == "alama.events.v1.LoanApplicationSubmitted"
    assert event.envelope.subject == "app-1"
    assert event.occurred_at == at


def test_event_ids_are_unique_unless_given() -> None:
    a, b = wrap(application(), producer="x"), wrap(application(), producer="x")
    assert a.event_id != b.event_id
    assert wrap(application(), producer="x", event_id="fixed").event_id == "fixed"


@pytest.mark.parametrize("cls", sorted(PAYLOAD_TYPES.values(), key=lambda c: c.__name__))
def test_every_registered_payload_decodes_as_itself(cls: type) -> None:
    event = decode(encode(wrap(cls(), producer="t")), cls)
    assert type(event.payload) is cls


def test_wrap_refuses_a_message_that_is_not_an_event() -> None:
    with pytest.raises(ValueError, match="not an Alama event payload"):
        wrap(ScoreRequest(), producer="t")


def _raw(**fields: object) -> bytes:
    envelope = EventEnvelope(event_id="e-1", schema_version=1, **fields)  # type: ignore[arg-type]
    envelope.occurred_at.CopyFrom(Timestamp(seconds=1))
    return envelope.SerializeToString()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "empty_record"),
        (b"", "empty_record"),
        (b"\xff\xff\xff not protobuf", "undecodable_envelope"),
        (EventEnvelope(payload_type="x").SerializeToString(), "missing_field"),
        (_raw(payload_type="alama.events.v1.Nope"), "unknown_payload_type"),
        (
            _raw(payload_type="alama.events.v1.CreditDecision", payload=b"\x0a\x05"),
            "undecodable_payload",
        ),
    ],
)
def test_bad_records_raise_with_a_dead_letter_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode(data)
    assert info.value.reason == reason


def test_unsupported_schema_version_is_rejected() -> None:
    envelope = wrap(application(), producer="t")
    envelope.schema_version = 99
    with pytest.raises(EnvelopeError) as info:
        decode(encode(envelope))
    assert info.value.reason == "unsupported_schema_version"


def test_payload_of_the_wrong_type_for_the_topic_is_rejected() -> None:
    data = encode(wrap(application(), producer="t"))
    with pytest.raises(EnvelopeError) as info:
        decode(data, CreditDecision)
    assert info.value.reason == "unexpected_payload_type"
    assert decode(data, (CreditDecision, LoanApplicationSubmitted)).payload == application()
