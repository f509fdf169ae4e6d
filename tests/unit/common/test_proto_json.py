"""`message_to_dict` is protobuf's `MessageToDict(preserving_proto_field_name=True)`: compared
on every event type Alama publishes (and the types they nest), filled at random from their
descriptors, edge values included (NaN and infinities, int64 extremes, unknown enum numbers,
empty nested messages, bytes, map keys of every kind), and on hand-made messages of the types
whose JSON form it leaves to the printer."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.common.envelope import PAYLOAD_TYPES
from services.common.proto_json import message_to_dict
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope

DOUBLES = [0.0, -0.0, 1.5, -2.25, 1e-7, 1e300, 1.7e308, 0.1 + 0.2, math.nan, math.inf, -math.inf]
INT64S = [0, 1, -1, 2**53 + 1, 2**63 - 1, -(2**63)]


def _scalar(field: FieldDescriptor, rng: random.Random) -> Any:
    cpp = field.cpp_type
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return rng.choice(DOUBLES + [rng.uniform(-1e6, 1e6) for _ in range(5)])
    if cpp == FieldDescriptor.CPPTYPE_INT64:
        return rng.choice(INT64S)
    if cpp == FieldDescriptor.CPPTYPE_UINT64:
        return rng.choice([0, 1, 2**64 - 1])
    if cpp == FieldDescriptor.CPPTYPE_INT32:
        return rng.choice([0, 7, -7, 2**31 - 1])
    if cpp == FieldDescriptor.CPPTYPE_UINT32:
        return rng.choice([0, 7, 2**32 - 1])
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return rng.random() < 0.5
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return rng.choice(numbers + ([] if field.enum_type.is_closed else [99]))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    return rng.choice(["", "a", "Kiswahili: ndiyo", "ünïcødé ✓", "x" * 40])


def _fill(message: Message, rng: random.Random, depth: int = 0) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = rng.randrange(0, 4_000_000_000)  # type: ignore[attr-defined]
        message.nanos = rng.choice([0, 1_000_000, 123_000, 7])  # type: ignore[attr-defined]
        return
    for field in descriptor.fields:
        if rng.random() < 0.25 or depth > 3:
            continue  # left unset: the default, left out of both dicts
        value_type = field.message_type
        if value_type is not None and value_type.GetOptions().map_entry:
            key_field = value_type.fields_by_name["key"]
            value_field = value_type.fields_by_name["value"]
            target = getattr(message, field.name)
            for _ in range(rng.randrange(4)):
                key = _scalar(key_field, rng)
                if value_field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                    _fill(target[key], rng, depth + 1)
                else:
                    target[key] = _scalar(value_field, rng)
        elif field.is_repeated:
            target = getattr(message, field.name)
            for _ in range(rng.randrange(4)):
                if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                    _fill(target.add(), rng, depth + 1)
                else:
                    target.append(_scalar(field, rng))
        elif field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            sub = getattr(message, field.name)
            sub.SetInParent()  # an empty nested message is present: {} in both
            if rng.random() < 0.8:
                _fill(sub, rng, depth + 1)
        else:
            setattr(message, field.name, _scalar(field, rng))


def _same(message: Message) -> None:
    expected = json_format.MessageToDict(message, preserving_proto_field_name=True)
    got = message_to_dict(message)
    # NaN is a string in both; json text compares floats, -0.0 and key order exactly
    assert json.dumps(got) == json.dumps(expected)
    assert got == expected


@pytest.mark.parametrize("name", sorted(PAYLOAD_TYPES))
def test_every_event_type_prints_as_protobufs_printer_does(name: str) -> None:
    rng = random.Random(name)
    for _ in range(60):
        message = PAYLOAD_TYPES[name]()
        _fill(message, rng)
        _same(message)


def test_an_empty_message_and_the_envelope() -> None:
    _same(CreditDecision())
    envelope = EventEnvelope(event_id="e-1", payload_type="x", payload=b"\x00\xff", producer="p")
    envelope.occurred_at.FromSeconds(1_800_000_000)
    _same(envelope)


def test_well_known_types_are_the_printers() -> None:
    stamp = timestamp_pb2.Timestamp(seconds=1_800_000_000, nanos=5)
    value = struct_pb2.Struct()
    value.update({"a": 1.0, "b": [True, None, "x"]})
    for message in (stamp, value, wrappers_pb2.DoubleValue(value=math.nan)):
        _same(message)


def test_a_decision_as_scoring_makes_it() -> None:
    decision = CreditDecision(
        decision_id="d", probability_of_default=0.0734, score=640, band="DECISION_BAND_REVIEW"
    )
    decision.features.update({f"f{i}": i / 7 for i in range(40)})
    decision.contributions.extend(i / 3 for i in range(40))
    decision.sequences["repayment_days_late"].values.extend(range(24))
    decision.decided_at.FromMilliseconds(1_800_000_000_123)
    decision.reasons.add(code="R1", description="late payments", contribution=0.4)
    _same(decision)
