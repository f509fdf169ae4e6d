"""The drift service on the real broker: quiet on reference-like decisions, alerts on a shift,
and an Evidently HTML report of the recent window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter
from services.common.settings import InfraSettings, ServiceSettings
from services.common.topics import TopicSpec, ensure_topics
from services.drift.__main__ import app as cli
from services.drift.agents import create_drift_app
from services.drift.reference import SCORE, load_reference
from services.drift.settings import DriftSettings
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.integration

SHIFTED = "monthly_income_kes"


def _decisions(sample: pd.DataFrame, version: str) -> Iterator[CreditDecision]:
    features = [c for c in sample.columns if c != SCORE]
    for row in sample.itertuples(index=False):
        values = row._asdict()
        decision = CreditDecision(
            decision_id=str(uuid.uuid4()),
            member_id=f"m-{uuid.uuid4().hex[:8]}",
            model_version=version,
            score=round(values[SCORE]),
            features={name: float(values[name]) for name in features},
        )
        decision.decided_at.GetCurrentTime()
        yield decision


async def _publish_all(
    infra: InfraSettings, topic: str, decisions: Iterator[CreditDecision]
) -> None:
    producer = create_producer(infra, client_id="drift-test")
    await producer.start()
    try:
        pending = [
            await publish(producer, topic, wrap(d, producer="scoring", subject=d.member_id))
            for d in decisions
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _wait_for(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Poll a condition of the running agent until it holds, failing after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the agent's state has no event to await
            await asyncio.sleep(0.05)


async def _end_offset(infra: InfraSettings, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


def _alerts_counted(version: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "alama_drift_alerts"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("model_version") == version
    )


async def test_shifted_decisions_raise_a_drift_alert(
    service_settings: ServiceSettings, scratch_topic: TopicSpec, tiny_bundle: Path
) -> None:
    alerts = TopicSpec(f"test.alerts.{uuid.uuid4().hex[:12]}", 1, 1, consumed=False)
    await ensure_topics(service_settings.infra.kafka_bootstrap, [alerts])
    settings = DriftSettings(
        infra=service_settings.infra,
        metrics_port=0,
        bundle_dir=str(tiny_bundle),
        window_size=500,
        evaluate_every=100,
        consumer_group=f"alama-drift-it-{uuid.uuid4().hex[:8]}",
        decisions_topic=scratch_topic.name,
        alerts_topic=alerts.name,
    )
    reference = load_reference(tiny_bundle)
    sample = pd.read_parquet(reference.sample_path)
    service = create_drift_app(settings, reference)
    window = service.monitor.window
    before = _alerts_counted(reference.model_version)

    await service.app.start()
    try:
        calm = sample.iloc[:1000]
        await _publish_all(
            settings.infra, scratch_topic.name, _decisions(calm, reference.model_version)
        )
        await _wait_for(lambda: window.seen >= len(calm))
        assert _alerts_counted(reference.model_version) == before
        assert await _end_offset(settings.infra, alerts.name) == 0

        shifted = sample.iloc[1000:1600].copy()
        shifted[SHIFTED] *= 5.0
        await _publish_all(
            settings.infra, scratch_topic.name, _decisions(shifted, reference.model_version)
        )
        records = await read_topic(settings.infra, alerts.name, 1, within=60)
    finally:
        await service.app.stop()

    alert = decode(records[0].value, DriftAlert).payload
    assert alert.subject == SHIFTED
    assert alert.psi > 0.25 and alert.threshold == 0.25
    assert alert.model_version == reference.model_version
    assert alert.window_size == 500


def test_report_writes_html_with_the_feature_names(
    service_settings: ServiceSettings,
    scratch_topic: TopicSpec,
    tiny_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = load_reference(tiny_bundle)
    sample = pd.read_parquet(reference.sample_path).iloc[:300]
    asyncio.run(
        _publish_all(
            service_settings.infra, scratch_topic.name, _decisions(sample, reference.model_version)
        )
    )
    monkeypatch.setenv("ALAMA_KAFKA_BOOTSTRAP", service_settings.infra.kafka_bootstrap)
    monkeypatch.setenv("ALAMA_DRIFT_BUNDLE_DIR", str(tiny_bundle))
    monkeypatch.setenv("ALAMA_DRIFT_DECISIONS_TOPIC", scratch_topic.name)
    out = tmp_path / "drift.html"

    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--window", "300"])

    assert result.exit_code == 0, result.output
    html = out.read_text()
    for name in (SHIFTED, "mm_inflow_sum_30d", "rp_paid_ratio_6m", SCORE):
        assert name in html


async def test_poison_decisions_are_dead_lettered_and_the_agent_goes_on(
    service_settings: ServiceSettings, scratch_topic: TopicSpec, tiny_bundle: Path
) -> None:
    """A far-future decision time stopped the agent for good (ToDatetime raised in it); a NUL in
    a decision id reached the window. Both are dead-lettered; the decisions after them count."""
    alerts = TopicSpec(f"test.alerts.{uuid.uuid4().hex[:12]}", 1, 1, consumed=False)
    await ensure_topics(service_settings.infra.kafka_bootstrap, [alerts])
    settings = DriftSettings(
        infra=service_settings.infra,
        metrics_port=0,
        bundle_dir=str(tiny_bundle),
        window_size=500,
        consumer_group=f"alama-drift-it-{uuid.uuid4().hex[:8]}",
        decisions_topic=scratch_topic.name,
        alerts_topic=alerts.name,
    )
    reference = load_reference(tiny_bundle)
    sample = pd.read_parquet(reference.sample_path)
    good = list(_decisions(sample.iloc[:50], reference.model_version))
    far, nul = list(_decisions(sample.iloc[50:52], reference.model_version))
    far.decided_at.seconds = 10**13
    nul.decision_id = "d-\x00"
    service = create_drift_app(settings, reference)
    window = service.monitor.window

    await _publish_all(settings.infra, scratch_topic.name, iter([far, nul, *good]))
    await service.app.start()
    try:
        await _wait_for(lambda: window.seen >= len(good))
        letters = await read_topic(settings.infra, f"{scratch_topic.name}.dlq", 2, within=30)
    finally:
        await service.app.stop()
    reasons = sorted(decode(r.value, DeadLetter).payload.reason for r in letters)
    assert reasons == ["nul_in_string", "timestamp_out_of_range"]
    assert window.seen == len(good)
