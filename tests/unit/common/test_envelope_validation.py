"""`decode` refuses what would stop a consumer later: every consumer gets the check for free."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.envelope import (
    MAX_ITEMS,
    MAX_RECORD_BYTES,
    MAX_STRING_CHARS,
    decode,
    encode,
    wrap,
)
from services.common.errors import EnvelopeError
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, ReasonCode
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome


def _reason(data: bytes) -> str:
    with pytest.raises(EnvelopeError) as caught:
        decode(data)
    return caught.value.reason


def test_a_far_future_payload_timestamp_is_refused() -> None:
    application = LoanApplicationSubmitted(application_id="a-1", member_id="m-1")
    application.applied_at.FromSeconds(10**11)  # year 5138: no datetime column holds it
    assert _reason(encode(wrap(application, producer="t"))) == "timestamp_out_of_range"


def test_a_timestamp_beyond_what_datetime_holds_is_refused() -> None:
    application = LoanApplicationSubmitted(application_id="a-1")
    application.applied_at.seconds = 10**13  # ToDatetime would raise ValueError in the handler
    with pytest.raises(EnvelopeError, match=r"applied_at") as caught:
        decode(encode(wrap(application, producer="t")))
    assert caught.value.reason == "timestamp_out_of_range"


@pytest.mark.parametrize(
    "moment",
    [datetime(1999, 12, 31, 23, 59, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)],
)
def test_the_envelope_timestamp_is_checked_too(moment: datetime) -> None:
    envelope = wrap(LoanApplicationSubmitted(application_id="a"), producer="t", occurred_at=moment)
    assert _reason(encode(envelope)) == "timestamp_out_of_range"


def test_timestamps_inside_the_window_pass() -> None:
    decision = CreditDecision(decision_id="d")
    decision.decided_at.FromDatetime(datetime(2000, 1, 1, tzinfo=UTC))
    at = datetime(2099, 12, 31, 23, 59, tzinfo=UTC)
    event = decode(encode(wrap(decision, producer="t", occurred_at=at)), CreditDecision)
    assert event.payload.decision_id == "d"


def test_a_nul_in_a_payload_string_is_refused() -> None:
    review = ReviewOutcome(application_id="a-1", justification="looks fine\x00; DROP")
    with pytest.raises(EnvelopeError, match="justification") as caught:
        decode(encode(wrap(review, producer="t")))
    assert caught.value.reason == "nul_in_string"


def test_a_nul_in_a_nested_message_a_map_key_or_value_or_the_envelope_is_refused() -> None:
    nested = CreditDecision(decision_id="d", reasons=[ReasonCode(code="R1", description="x\x00")])
    keyed = CreditDecision(decision_id="d", features={"income\x00": 1.0})
    valued = LoanApplicationSubmitted(application_id="a", attributes={"k": "v\x00"})
    for payload in (nested, keyed, valued):
        assert _reason(encode(wrap(payload, producer="t"))) == "nul_in_string"
    assert _reason(encode(wrap(valued.__class__(), producer="t", subject="s\x00"))) == (
        "nul_in_string"
    )


def test_invalid_utf8_in_a_string_is_refused() -> None:
    payload = LoanApplicationSubmitted(application_id="aXb").SerializeToString()
    envelope = wrap(LoanApplicationSubmitted(), producer="t")
    envelope.payload = payload.replace(b"aXb", b"a\xffb")
    assert _reason(encode(envelope)) == "undecodable_payload"
    outer = encode(wrap(LoanApplicationSubmitted(), producer="t", subject="sXs"))
    assert _reason(outer.replace(b"sXs", b"s\xc3s")) == "undecodable_envelope"


def test_sizes_are_capped() -> None:
    assert _reason(b"\x0a" * (MAX_RECORD_BYTES + 1)) == "record_too_large"
    many = CreditDecision(decision_id="d", repayment_attention=[0.1] * (MAX_ITEMS + 1))
    assert _reason(encode(wrap(many, producer="t"))) == "too_many_items"
    wide = CreditDecision(decision_id="d", features={f"f{i}": 1.0 for i in range(MAX_ITEMS + 1)})
    assert _reason(encode(wrap(wide, producer="t"))) == "too_many_items"
    long = LoanApplicationSubmitted(application_id="a" * (MAX_STRING_CHARS + 1))
    assert _reason(encode(wrap(long, producer="t"))) == "string_too_long"


def test_an_envelope_without_a_timestamp_still_decodes() -> None:
    envelope = EventEnvelope()
    envelope.CopyFrom(wrap(LoanApplicationSubmitted(application_id="a"), producer="t"))
    envelope.ClearField("occurred_at")
    assert decode(encode(envelope)).payload.application_id == "a"  # type: ignore[attr-defined]


def test_a_fault_deep_in_repeated_and_mapped_messages_is_found_and_named() -> None:
    """Every consumer's quick walk skips numbers and builds no paths: it must still reach a
    string in a repeated field, a message in a map and the items of a repeated message."""
    coded = ReviewOutcome(application_id="a", reason_codes=["R1", "R2\x00"])
    with pytest.raises(EnvelopeError, match=r"reason_codes\[1\]") as caught:
        decode(encode(wrap(coded, producer="t")))
    assert caught.value.reason == "nul_in_string"
    long = CreditDecision(decision_id="d", sequences={"repayments": {"values": [0.0] * 3}})
    long.sequences["mobile_money"].values.extend([0.0] * (MAX_ITEMS + 1))
    with pytest.raises(EnvelopeError, match=r"sequences\['mobile_money'\]") as caught:
        decode(encode(wrap(long, producer="t")))
    assert caught.value.reason == "too_many_items"
    third = CreditDecision(
        decision_id="d",
        reasons=[ReasonCode(code="R1"), ReasonCode(code="R2"), ReasonCode(code="R3" * 40_000)],
    )
    with pytest.raises(EnvelopeError, match=r"reasons\[2\]\.code") as caught:
        decode(encode(wrap(third, producer="t")))
    assert caught.value.reason == "string_too_long"
