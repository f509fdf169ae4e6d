"""Evidently data-drift report: the most recent decisions against the bundle's training sample.

PSI gauges say *that* something moved; the HTML report shows *how* (per-feature distributions
and tests) for a risk officer or data scientist. The recent window is read back from the
decisions topic (the last `count` records of each partition, newest `count` kept), so the
report works without the running service and without any state of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pandas as pd
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.envelope import decode
from services.common.errors import InvalidEvent
from services.common.kafka_security import client_options
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.settings import InfraSettings
from services.drift.reference import SCORE, DriftReference
from services.drift.settings import DriftSettings

DECIDED_AT = "decided_at"


async def recent_decisions(
    settings: DriftSettings, count: int, within: float = 30.0
) -> pd.DataFrame:
    """The newest `count` decisions on the decisions topic: features, score and decision time."""
    consumer = AIOKafkaConsumer(
        **client_options(settings.infra),
        group_id=None,
        enable_auto_commit=False,
        client_id=f"{settings.service_name}-report-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    rows: list[dict[str, float | pd.Timestamp]] = []
    try:
        partitions = await _partitions(settings.infra, settings.decisions_topic)
        assigned = [TopicPartition(settings.decisions_topic, p) for p in partitions]
        if not assigned:
            return pd.DataFrame()
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        starts = await consumer.beginning_offsets(assigned)
        for tp in assigned:
            consumer.seek(tp, max(starts[tp], ends[tp] - count))
        pending = {tp for tp in assigned if ends[tp] > max(starts[tp], ends[tp] - count)}
        async with asyncio.timeout(within):
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset + 1 >= ends[tp]:
                            pending.discard(tp)
                        try:
                            decision = decode(record.value, CreditDecision).payload
                        except InvalidEvent:
                            continue  # the stream processor dead-letters these
                        row: dict[str, float | pd.Timestamp] = dict(decision.features)
                        row[SCORE] = float(decision.score)
                        row[DECIDED_AT] = pd.Timestamp(decision.decided_at.ToDatetime(), tz="UTC")
                        rows.append(row)
    finally:
        await consumer.stop()
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(DECIDED_AT, kind="stable").tail(count).reset_index(drop=True)


async def _partitions(infra: InfraSettings, topic: str) -> list[int]:
    """The topic's partition ids (none when it does not exist)."""
    admin = AIOKafkaAdminClient(**client_options(infra))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"] for d in described if d.get("error_code", 0) == 0 for p in d["partitions"]
    )


def write_report(reference: DriftReference, current: pd.DataFrame, out: Path) -> list[str]:
    """Write the HTML report over the columns both sides share; return those columns."""
    from evidently import Report  # heavy import: only for this command
    from evidently.presets import DataDriftPreset

    if not reference.sample_path.is_file():
        raise FileNotFoundError(f"reference sample missing: {reference.sample_path}")
    baseline = pd.read_parquet(reference.sample_path)
    columns = [c for c in baseline.columns if c in current.columns]
    if not columns:
        raise ValueError("the recent decisions share no feature with the reference sample")
    snapshot = Report([DataDriftPreset()]).run(
        current_data=current[columns].astype("float64"),
        reference_data=baseline[columns].astype("float64"),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    return columns
