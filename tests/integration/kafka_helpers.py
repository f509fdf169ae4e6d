"""Small helpers for tests against the real broker: publishing acknowledged, and reading with a
timeout (conditions, no sleeps)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.settings import InfraSettings


async def publish_envelopes(
    infra: InfraSettings, topic: str, envelopes: Sequence[EventEnvelope]
) -> None:
    """Each envelope on the topic, in order, each acknowledged by the broker before the next."""
    producer = create_producer(infra, client_id="integration-tests")
    await producer.start()
    try:
        for envelope in envelopes:
            await (await publish(producer, topic, envelope))
    finally:
        await producer.stop()


async def read_topic(
    infra: InfraSettings, topic: str, count: int, within: float = 30.0
) -> list[ConsumerRecord]:
    """Read `count` records from the start of a topic, failing after `within` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=f"reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(within):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for part in batch.values():
                    records.extend(part)
    except TimeoutError as exc:
        raise AssertionError(
            f"{topic}: got {len(records)} of {count} records in {within}s"
        ) from exc
    finally:
        await consumer.stop()
    return records
