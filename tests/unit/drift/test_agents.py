"""The Faust agent reads CreditDecision envelopes in the test context, sets gauges, alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.common.envelope import decode, encode, wrap
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.drift.agents import create_drift_app
from services.drift.reference import DriftReference, ReferenceMissing
from services.drift.settings import DriftSettings
from tests.unit.drift.conftest import VERSION, reference_sample


def _decision(i: int, income: float, tenure: float, score: float, version: str = VERSION) -> bytes:
    decision = CreditDecision(
        decision_id=f"d-{i}",
        model_version=version,
        score=round(score),
        features={"income": income, "tenure": tenure},
    )
    decision.decided_at.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    return encode(wrap(decision, producer="scoring", subject=f"m-{i}"))


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_agent_updates_gauges_and_publishes_one_alert(reference: DriftReference) -> None:
    published: list[tuple[str, EventEnvelope]] = []

    async def publish(
        topic: str, envelope: EventEnvelope, headers: list[tuple[str, bytes]]
    ) -> None:
        published.append((topic, envelope))

    settings = DriftSettings(
        window_size=100,
        evaluate_every=50,
        consumer_group="alama-unit-drift",
        alerts_topic="alerts.t",
    )
    service = create_drift_app(settings, reference, publisher=publish)
    rows = reference_sample(300, seed=21)
    rows.loc[200:, "score"] += 200.0  # the last third: scores far above the reference
    async with service.agent.test_context() as agent:
        for i, row in enumerate(rows.itertuples(index=False)):
            await agent.put(_decision(i, row.income, row.tenure, row.score))
        await agent.put(b"not an envelope")

    alerts = [decode(encode(e), DriftAlert) for t, e in published if t == "alerts.t"]
    assert [a.payload.subject for a in alerts] == ["score"]
    assert alerts[0].payload.psi > 0.25 and alerts[0].payload.model_version == VERSION
    score_psi = _gauge("alama_drift_psi", subject="score", model_version=VERSION)
    assert score_psi is not None and score_psi > alerts[0].payload.psi  # the whole window moved
    income_psi = _gauge("alama_drift_psi", subject="income", model_version=VERSION)
    assert income_psi is not None and income_psi < 0.25
    assert _gauge("alama_drift_window_fill", model_version=VERSION) == 1.0
    assert _gauge("alama_drift_alerts_total", subject="score", model_version=VERSION) == 1.0

    letters = [decode(encode(e), DeadLetter) for t, e in published if t == "credit.decisions.dlq"]
    assert [letter.payload.reason for letter in letters] == ["undecodable_envelope"]


def test_missing_bundle_stops_the_service_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ReferenceMissing, match="make train"):
        create_drift_app(DriftSettings(bundle_dir=str(tmp_path / "missing")))


async def test_the_monitor_follows_the_champion_and_leaves_other_models_decisions_out(
    reference: DriftReference,
) -> None:
    from dataclasses import replace

    published: list[tuple[str, EventEnvelope]] = []

    async def publish(
        topic: str, envelope: EventEnvelope, headers: list[tuple[str, bytes]]
    ) -> None:
        published.append((topic, envelope))

    settings = DriftSettings(
        window_size=100, evaluate_every=50, consumer_group="alama-unit-follow", alerts_topic="a.f"
    )
    service = create_drift_app(settings, reference, publisher=publish)
    rows = reference_sample(150, seed=5)
    rows["score"] += 200.0  # far from the reference: every window of them alerts
    promoted = replace(reference, model_version="promoted-bundle")

    def other(i: int, row: object) -> bytes:
        values = (row.income, row.tenure, row.score)  # type: ignore[attr-defined]
        return _decision(i, *values, version="promoted-bundle")

    before = _gauge("alama_drift_other_model_decisions_total", model_version="promoted-bundle")
    async with service.agent.test_context() as agent:
        # the new champion's decisions before drift follows it: not compared with the old one
        for i, row in enumerate(rows.itertuples(index=False)):
            await agent.put(other(i, row))
        assert service.monitor.window.fill == 0.0 and published == []
        assert service.follow(promoted) and not service.follow(promoted)
        for i, row in enumerate(rows.itertuples(index=False)):
            await agent.put(other(1000 + i, row))
    after = _gauge("alama_drift_other_model_decisions_total", model_version="promoted-bundle")
    assert (after or 0) - (before or 0) == len(rows)
    alerts = [decode(encode(e), DriftAlert) for t, e in published if t == "a.f"]
    assert alerts and {a.payload.model_version for a in alerts} == {"promoted-bundle"}
