"""Wait until a consumer group has caught up: committed offsets at the end of its topics.

Used between the history phase and the applications phase, so an application is scored after
its member's history reached the feature store rather than racing it. The lag itself is the
shared library's (`services.common.lag`), computed as the services export it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.lag import GroupLag, GroupLagProbe
from services.common.settings import InfraSettings
from services.common.topics import all_topics, ensure_topics


@dataclass(frozen=True)
class LagWait:
    caught_up: bool
    seconds: float
    lag: GroupLag


async def wait_for_group(
    infra: InfraSettings,
    group_id: str,
    topics: Sequence[str],
    *,
    within: float,
    poll_interval: float = 0.5,
) -> LagWait:
    """Poll until the group's lag on `topics` is zero, or `within` seconds pass."""
    started = time.monotonic()
    async with GroupLagProbe(infra, group_id, topics) as probe:
        lag = await probe.sample()
        while lag.total > 0 and time.monotonic() - started < within:
            await asyncio.sleep(min(poll_interval, max(within - (time.monotonic() - started), 0)))
            lag = await probe.sample()
    return LagWait(caught_up=lag.total == 0, seconds=time.monotonic() - started, lag=lag)


async def end_offsets(infra: InfraSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """Every partition's end offset of the project's `topics`."""
    specs = {t.name: t for t in all_topics()}
    partitions = [TopicPartition(t, p) for t in topics for p in range(specs[t].partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def start_groups_at_the_end(infra: InfraSettings, groups: Mapping[str, list[str]]) -> None:
    """Commit each fresh consumer group at its topics' current end, so services started on it
    see only what is sent from now on, not what the demo or earlier runs left on the topics."""
    await ensure_topics(infra.kafka_bootstrap, all_topics())
    for group, topics in groups.items():
        ends = await end_offsets(infra, topics)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=infra.kafka_bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()
