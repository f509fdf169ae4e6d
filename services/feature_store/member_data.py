"""A member's data in the feature store: Feast online (Redis) and offline (PostgreSQL), and the
feature_store worker's Faust tables (their changelog topics). Export reads it, erasure removes it.

These stores are keyed by the tenant-scoped member key (`MemberRef.key`, services.common.members),
so one SACCO's member never reaches another's rows. They hold no decisions, so they never vouch
(`holds` is False): `MemberRights` calls them only after a store of the tenant's decisions has
vouched for the member.

- Online: the member's Redis hash, its key computed with Feast's own serialisation
  (`_redis_key` over the `member_id` entity key), so it is exactly the key Feast reads; deleting
  it removes every feature view's row at once.
- Offline: every table of the Feast offline schema that has a `member_id` column (the snapshot
  tables training loads and anything added beside them), found in the catalogue rather than
  listed, so a table added later is not missed.
- Faust tables: the worker keeps each member's recent activity in memory, backed by compacted
  changelog topics keyed by the member key. Erasure publishes a tombstone per table with the
  same key (and so the same partition: the producer's default partitioner, which the tables use);
  compaction then removes the values and a restarting worker restores nothing for the member.
  A worker that is running keeps its in-memory copy until it restarts or rebalances (not readable
  through any API); a new event for the member after the erasure starts a new history.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TableT

from services.common.feast_config import open_feature_store
from services.common.kafka import create_producer
from services.common.kafka_security import client_options
from services.common.member_rights import MemberRef
from services.common.postgres import create_pool
from services.common.redis_store import create_redis
from services.common.settings import InfraSettings

if TYPE_CHECKING:
    from feast import FeatureStore

#: The worker's Faust tables (agents.py names them); their changelog is `<app id>-<name>-changelog`.
ACTIVITY_TABLES = ("mobile_money_activity", "repayment_activity")
MEMBER_KEY = "member_id"


def json_ready(value: Any) -> Any:
    """Feast and PostgreSQL values as JSON: arrays as lists, NaN as None, times as ISO text."""
    if isinstance(value, np.ndarray | list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FeastMemberData:
    """The member's rows in Feast's online store and offline tables."""

    name = "feast"
    tenant_scoped = False

    def __init__(self, infra: InfraSettings, store: FeatureStore | None = None) -> None:
        self.infra = infra
        self._store = store

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            self._store = open_feature_store(self.infra)
        return self._store

    async def holds(self, member: MemberRef) -> bool:
        return False  # knows no tenants: never the one that vouches

    def _redis_key(self, member_id: str) -> bytes:
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        key = EntityKey(join_keys=[MEMBER_KEY], entity_values=[Value(string_val=member_id)])
        return _redis_key(
            self.store.project, key, self.store.config.entity_key_serialization_version
        )

    def _online(self, member_id: str) -> dict[str, dict[str, Any]]:
        views = [
            view
            for view in self.store.list_feature_views()
            if view.online and MEMBER_KEY in view.join_keys
        ]
        refs = [f"{view.name}:{feature.name}" for view in views for feature in view.features]
        if not refs:
            return {}
        found = self.store.get_online_features(
            features=refs, entity_rows=[{MEMBER_KEY: member_id}], full_feature_names=True
        ).to_dict()
        out: dict[str, dict[str, Any]] = {}
        for view in views:
            values = {f.name: json_ready(found[f"{view.name}__{f.name}"][0]) for f in view.features}
            if any(v is not None for v in values.values()):
                out[view.name] = values
        return out

    def _offline_schema(self) -> str:
        return str(self.store.config.offline_store.db_schema)

    async def _offline_tables(self, conn: asyncpg.Connection) -> list[str]:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND column_name = $2 ORDER BY table_name",
            self._offline_schema(),
            MEMBER_KEY,
        )
        return [r["table_name"] for r in rows]

    def _table(self, name: str) -> str:
        return f'"{self._offline_schema()}"."{name}"'

    async def export(self, member: MemberRef) -> dict[str, Any]:
        online = await asyncio.to_thread(self._online, member.key)
        offline: dict[str, list[dict[str, Any]]] = {}
        pool = await create_pool(self.infra, max_size=1)
        try:
            async with pool.acquire() as conn:
                for table in await self._offline_tables(conn):
                    rows = await conn.fetch(
                        f"SELECT * FROM {self._table(table)} WHERE {MEMBER_KEY} = $1",
                        member.key,
                    )
                    if rows:
                        offline[table] = [
                            {k: json_ready(v) for k, v in dict(r).items()} for r in rows
                        ]
        finally:
            await pool.close()
        return {"online": online, "offline": offline}

    async def erase(self, member: MemberRef) -> int:
        """Delete the online hash and the offline rows; returns how many went."""
        key = await asyncio.to_thread(self._redis_key, member.key)
        redis = create_redis(self.infra)
        try:
            removed = int(await redis.delete(key))
        finally:
            await redis.aclose()
        pool = await create_pool(self.infra, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                for table in await self._offline_tables(conn):
                    status = await conn.execute(
                        f"DELETE FROM {self._table(table)} WHERE {MEMBER_KEY} = $1",
                        member.key,
                    )
                    removed += int(status.split()[-1])
        finally:
            await pool.close()
        return removed


class WorkerTablesMemberData:
    """The member's state in the running worker's own tables (the worker that holds the
    member's partition answers an export request): what `ActivityTableMemberData` reads from the
    changelogs, without a consumer per request."""

    name = "faust_tables"
    tenant_scoped = False

    def __init__(self, tables: Sequence[TableT[str, Any]]) -> None:
        self.tables = tables

    async def holds(self, member: MemberRef) -> bool:
        return False

    async def export(self, member: MemberRef) -> dict[str, Any]:
        found = {
            table.changelog_topic.get_topic_name(): table.get(member.key) for table in self.tables
        }
        return {topic: value for topic, value in found.items() if value is not None}

    async def erase(self, member: MemberRef) -> int:  # the worker erases through its agent
        raise NotImplementedError(
            "the running worker erases through services.feature_store.erasures"
        )


class ActivityTableMemberData:
    """The member's state in the worker's Faust tables, read from and erased through their
    changelog topics (the tables' durable copy)."""

    name = "faust_tables"
    tenant_scoped = False

    def __init__(
        self,
        infra: InfraSettings,
        app_id: str = "feature_store",
        tables: Sequence[str] = ACTIVITY_TABLES,
        timeout_s: float = 10.0,
    ) -> None:
        self.infra = infra
        self.topics = [f"{app_id}-{table}-changelog" for table in tables]
        self.timeout_s = timeout_s

    async def holds(self, member: MemberRef) -> bool:
        return False

    async def _latest(self, member_id: str) -> dict[str, Any]:
        """The member's current value in each table's changelog (None: none, or erased)."""
        key = member_id.encode()
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(self.infra))
        await consumer.start()
        try:
            latest: dict[str, Any] = {}
            for topic in self.topics:
                partitions = await consumer._client.fetch_all_metadata()
                known = sorted(partitions.partitions_for_topic(topic) or ())
                if not known:
                    latest[topic] = None
                    continue
                partition = DefaultPartitioner()(key, known, known)
                latest[topic] = await self._read(consumer, TopicPartition(topic, partition), key)
            return latest
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, tp: TopicPartition, key: bytes) -> Any:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        value: Any = None
        async with asyncio.timeout(self.timeout_s):
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    if record.key == key:
                        value = None if record.value is None else json.loads(record.value)
        return value

    async def export(self, member: MemberRef) -> dict[str, Any]:
        latest = await self._latest(member.key)
        return {topic: value for topic, value in latest.items() if value is not None}

    async def erase(self, member: MemberRef) -> int:
        """A tombstone for the member in every table's changelog; returns how many tables held
        a value (a tombstone goes to each anyway: harmless, and it covers a write in flight)."""
        held = sum(value is not None for value in (await self._latest(member.key)).values())
        producer = create_producer(self.infra, client_id="member-erasure")
        await producer.start()
        try:
            for topic in self.topics:
                await producer.send_and_wait(topic, key=member.key.encode(), value=None)
        finally:
            await producer.stop()
        return held
