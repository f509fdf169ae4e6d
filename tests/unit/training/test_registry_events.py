"""The registry's changes as events and the outbox that keeps them until the broker has them:
the event carries every gate check with the rows it was measured on and the change's own id (so
the audit chain records a resent change once); the outbox survives a torn line, keeps order, and
empties once everything was acknowledged."""

from __future__ import annotations

from pathlib import Path

from services.common.envelope import decode, wrap
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged, RegistryAction
from training.gate import Check, Threshold
from training.registry import REFUSED, RegistryChange
from training.registry_events import Outbox, registry_event


def _change() -> RegistryChange:
    return RegistryChange(
        action=REFUSED,
        requested_by="analyst@sacco",
        model_name="alama-credit-ensemble",
        model_version="7",
        bundle_version="quick-7",
        replaced_version="5",
        replaced_bundle_version="quick-5",
        reason="refused: equal_opportunity[gender] 0.0900 >= 0.05",
        at="2026-05-13T10:00:00+00:00",
        trigger="drift",
        checks=(
            Check(
                "auc_vs_champion[matured_outcomes]",
                True,
                0.001,
                Threshold(low=-0.005),
                (-0.002, 0.004),
                "",
            ),
            Check(
                "equal_opportunity[gender]",
                False,
                0.09,
                Threshold(high=0.05, high_exclusive=True),
                (0.06, 0.12),
                "",
            ),
            Check("ece[held_out]", False, None, Threshold(high=0.02), None, "one class"),
        ),
    )


def test_the_event_carries_who_asked_every_check_and_the_change_id() -> None:
    change = _change()
    envelope = registry_event(change, {"held_out": 5000, "matured_outcomes": 800})
    assert envelope.event_id == change.change_id and envelope.producer == "training"
    event = decode(envelope.SerializeToString(), ModelRegistryChanged).payload
    assert event.action == RegistryAction.REGISTRY_ACTION_REFUSED
    assert (event.requested_by, event.model_version, event.replaced_model_version) == (
        "analyst@sacco",
        "7",
        "5",
    )
    assert (event.bundle_version, event.replaced_bundle_version, event.trigger) == (
        "quick-7",
        "quick-5",
        "drift",
    )
    matured, fairness, ece = event.checks
    assert (matured.rows, fairness.rows, ece.rows) == (800, 5000, 5000)
    assert (fairness.passed, fairness.threshold, fairness.ci_upper) == (False, "< 0.05", 0.12)
    assert not ece.measured and matured.measured and matured.ci_lower == -0.002
    assert event.changed_at.ToDatetime().isoformat() == "2026-05-13T10:00:00"


def test_the_outbox_keeps_order_survives_a_torn_line_and_empties(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    assert outbox.pending() == []
    first, second = registry_event(_change()), registry_event(_change())
    outbox.add(first)
    with outbox.path.open("a") as f:
        f.write('{"event_id": "torn", "envel')  # a crash mid-write
    outbox.add(second)
    outbox.add(first)  # added twice (a retried command): sent once
    pending = outbox.pending()
    assert [e.event_id for e in pending] == [first.event_id, second.event_id]
    assert pending[1].envelope == second  # byte for byte what was built
    outbox.mark_sent([first.event_id])
    assert [e.event_id for e in outbox.pending()] == [second.event_id]
    assert outbox.path.read_text() != ""
    outbox.mark_sent([second.event_id])
    assert outbox.pending() == [] and outbox.path.read_text() == ""


def test_an_event_with_no_gate_checks_is_still_well_formed() -> None:
    change = RegistryChange(
        action="promoted",
        requested_by="trainer",
        model_name="m",
        model_version="1",
        bundle_version="b1",
        replaced_version=None,
        replaced_bundle_version=None,
        reason="first champion",
        at="2026-05-13T10:00:00+00:00",
    )
    envelope = registry_event(change)
    event = decode(envelope.SerializeToString(), ModelRegistryChanged).payload
    assert event.replaced_model_version == "" and list(event.checks) == []
    assert envelope.payload_type == wrap(event, producer="x").payload_type
