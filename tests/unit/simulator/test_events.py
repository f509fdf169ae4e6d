"""Core banking's Kafka events: they decode, and their ids are deterministic."""

from __future__ import annotations

from datetime import UTC

from services.common import topics
from services.common.envelope import decode
from services.common.protos.alama.events.v1.applications_pb2 import (
    Channel,
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.simulator.events import (
    application_envelope,
    repayment_envelopes,
    world_namespace,
)
from services.simulator.scenario import build_scenario
from training.world import World, generate_world, hash_national_id, world_events


def test_repayment_envelopes_decode_with_deterministic_ids(small_world: World) -> None:
    namespace = world_namespace(small_world.seed, len(small_world.members))
    scenario = build_scenario(small_world, 30, "ev")
    envelopes = list(repayment_envelopes(scenario.repayments, namespace))
    other = build_scenario(small_world, 30, "other")
    again = list(repayment_envelopes(other.repayments, namespace))

    assert len(envelopes) == len(scenario.repayments) > 0
    assert [e.event_id for e in envelopes] == [e.event_id for e in again]
    assert len({e.event_id for e in envelopes}) == len(envelopes)
    for envelope, row in zip(envelopes, scenario.repayments.itertuples(), strict=True):
        event = decode(envelope.SerializeToString(), RepaymentRecorded)
        assert envelope.producer == "core-banking"
        assert envelope.subject == row.member_id == event.payload.member_id
        assert event.payload.repayment_id == row.repayment_id
        assert event.payload.amount_paid_kes == row.amount_paid_kes
        assert event.payload.days_late == row.days_late
        assert event.occurred_at == row.recorded_at


def test_repayment_event_ids_match_the_world_replay() -> None:
    """The same repayment replayed by `world_events` or by the simulator is one event."""
    world = generate_world(12, seed=3)
    namespace = world_namespace(world.seed, len(world.members))
    replayed = {
        envelope.event_id for topic, envelope in world_events(world) if topic == topics.REPAYMENTS
    }
    scenario = build_scenario(world, 12, "x")
    simulated = {e.event_id for e in repayment_envelopes(scenario.repayments, namespace)}
    assert simulated and simulated == replayed


def test_application_envelope_carries_the_run_scoped_id(small_world: World) -> None:
    namespace = world_namespace(small_world.seed, len(small_world.members))
    first = build_scenario(small_world, 5, "runA").applications
    second = build_scenario(small_world, 5, "runB").applications

    for a, b in zip(first, second, strict=True):
        envelope = application_envelope(a, namespace)
        event = decode(envelope.SerializeToString(), LoanApplicationSubmitted)
        assert event.payload.application_id == a.application_id
        assert event.payload.product == LoanProduct.Value(f"LOAN_PRODUCT_{a.product.upper()}")
        assert event.payload.channel == Channel.Value(f"CHANNEL_{a.channel.upper()}")
        assert event.payload.national_id_hash == hash_national_id(a.national_id)
        assert a.national_id not in envelope.SerializeToString().decode(errors="replace")
        assert event.payload.applied_at.ToDatetime(tzinfo=UTC) == a.applied_at
        assert envelope.subject == a.member_id
        assert application_envelope(a, namespace).event_id == envelope.event_id
        assert application_envelope(b, namespace).event_id != envelope.event_id
