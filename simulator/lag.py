"""Wait until a consumer group has caught up: committed offsets at the end of its topics.

Used between the history phase and the applications phase, so an application is scored after
its member's history reached the feature store rather than racing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.settings import InfraSettings


@dataclass(frozen=True)
class GroupLag:
    group_id: str
    by_partition: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_partition.values())


@dataclass(frozen=True)
class LagWait:
    caught_up: bool
    seconds: float
    lag: GroupLag


class LagProbe:
    """Reads a group's committed offsets (admin client) and the topics' end offsets."""

    def __init__(self, infra: InfraSettings, group_id: str, topics: Sequence[str]) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False
        )
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> LagProbe:
        await self.admin.start()
        try:
            await self.consumer.start()
            described = await self.admin.describe_topics(self.topics)
        except BaseException:
            await self.consumer.stop()
            await self.admin.close()
            raise
        self.partitions = sorted(
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d.get("error_code", 0) == 0
            for p in d["partitions"]
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self) -> GroupLag:
        ends = await self.consumer.end_offsets(self.partitions) if self.partitions else {}
        committed = await self.admin.list_consumer_group_offsets(
            self.group_id, partitions=self.partitions or None
        )
        by_partition = {}
        for tp in self.partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else 0
            by_partition[tp] = max(ends.get(tp, 0) - position, 0)
        return GroupLag(self.group_id, by_partition)


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
    async with LagProbe(infra, group_id, topics) as probe:
        lag = await probe.lag()
        while lag.total > 0 and time.monotonic() - started < within:
            await asyncio.sleep(min(poll_interval, max(within - (time.monotonic() - started), 0)))
            lag = await probe.lag()
    return LagWait(caught_up=lag.total == 0, seconds=time.monotonic() - started, lag=lag)
