"""Small waiting helpers for tests against the real broker (conditions with timeouts, no sleeps)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.common.settings import InfraSettings


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
