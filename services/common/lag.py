"""Consumer-group lag, computed one way for every consumer and tool.

Lag is what a restart would replay: each partition's end offset minus the group's committed
offset, read from the broker as `kafka-consumer-groups --describe` does (not from a client's
internals, so it counts whichever worker holds the partition). A partition the group never
committed, or whose committed offset retention has deleted, counts from its first offset still
held, not from 0.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.kafka_security import client_options
from services.common.settings import InfraSettings
from services.common.telemetry import CONSUMER_LAG


def partition_lag(end: int, committed: int | None, start: int = 0) -> int:
    """Records of one partition not yet committed by the group."""
    position = committed if committed is not None and committed >= 0 else start
    return max(end - max(position, start), 0)


def export_lag(service: str, tp: TopicPartition, lag: int) -> None:
    """Set the shared `alama_consumer_lag` gauge of one partition."""
    CONSUMER_LAG.labels(service, tp.topic, str(tp.partition)).set(lag)


@dataclass(frozen=True)
class GroupLag:
    group_id: str
    by_partition: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_partition.values())

    def on(self, partitions: Collection[tuple[str, int]]) -> int:
        """Lag summed over some partitions (for example those a worker holds)."""
        wanted = {(topic, partition) for topic, partition in partitions}
        return sum(
            lag for tp, lag in self.by_partition.items() if (tp.topic, tp.partition) in wanted
        )


class GroupLagProbe:
    """Reads a group's committed offsets and its topics' offsets; with `service`, every sample
    also sets the `alama_consumer_lag` gauge under that service's label. Its clients
    authenticate as every other (`kafka_security.client_options`)."""

    def __init__(
        self,
        infra: InfraSettings,
        group_id: str,
        topics: Sequence[str],
        *,
        service: str | None = None,
    ) -> None:
        self.infra = infra
        self.group_id = group_id
        self.topics = list(topics)
        self.service = service
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> GroupLagProbe:
        await self._clients()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            options = client_options(self.infra)
            admin = AIOKafkaAdminClient(**options)
            offsets = AIOKafkaConsumer(**options, enable_auto_commit=False)
            await admin.start()
            try:
                await offsets.start()
            except BaseException:
                await admin.close()
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def sample(self) -> GroupLag:
        """The group's lag on every partition of its topics (described anew each time, so added
        partitions are counted)."""
        admin, offsets = await self._clients()
        described = await admin.describe_topics(self.topics)
        partitions = sorted(
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d.get("error_code", 0) == 0
            for p in d["partitions"]
        )
        if not partitions:
            return GroupLag(self.group_id)
        ends = await offsets.end_offsets(partitions)
        starts = await offsets.beginning_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self.group_id, partitions=partitions)
        by_partition: dict[TopicPartition, int] = {}
        for tp in partitions:
            done = committed.get(tp)
            by_partition[tp] = partition_lag(
                ends[tp], done.offset if done is not None else None, starts[tp]
            )
            if self.service is not None:
                export_lag(self.service, tp, by_partition[tp])
        return GroupLag(self.group_id, by_partition)

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.stop()
        if self._admin is not None:
            await self._admin.close()
        self._admin = self._offsets = None
