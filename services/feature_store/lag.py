"""Consumer lag of the service's group: each partition's high-water mark minus its commit.

Read from the broker, as `kafka-consumer-groups --describe` does, rather than from Faust's
internals: it counts what a restart would replay, whichever worker holds the partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.telemetry import CONSUMER_LAG


class ConsumerLag:
    """Samples the lag of `group` on `topics` and sets the per-partition gauge."""

    def __init__(
        self, bootstrap: str, group: str, topics: Sequence[str], *, service: str = "feature_store"
    ) -> None:
        self.service = service  # the label of the shared alama_consumer_lag gauge
        self.bootstrap = bootstrap
        self.group = group
        self.topics = list(topics)
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await admin.start()
            try:
                await offsets.start()
            except BaseException:
                await admin.close()
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def sample(self) -> dict[TopicPartition, int]:
        """Lag per partition (a partition the group never committed counts from its start)."""
        admin, offsets = await self._clients()
        described = await admin.describe_topics(self.topics)
        partitions = [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d.get("error_code", 0) == 0
            for p in d["partitions"]
        ]
        if not partitions:
            return {}
        ends = await offsets.end_offsets(partitions)
        starts = await offsets.beginning_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self.group, partitions=partitions)
        lag: dict[TopicPartition, int] = {}
        for tp in partitions:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag[tp] = max(ends[tp] - position, 0)
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(lag[tp])
        return lag

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.stop()
        if self._admin is not None:
            await self._admin.close()
        self._admin = self._offsets = None
