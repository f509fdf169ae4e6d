"""The feature_store worker writes what it pushes online to Feast's PostgreSQL offline store too.

A small world is loaded into its own Feast project (training's offline tables); one member's
wallet transactions and repayments are then streamed, moved to after everything training
stored, through the real Kafka, Redis and PostgreSQL. Point in time, Feast's offline store must
give the member's streamed values after the events (exactly what the online store has) and
training's snapshot before them; a replay must add no rows, a training reload (which replaces
the tables) must keep the streamed rows, and a failed offline write must be written again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from services.common import features as F
from services.common.feast_config import open_feature_store
from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.feature_store.agents import FeatureStoreService, create_feature_store_app
from services.feature_store.offline import OfflineTable, PostgresOfflineWriter
from services.feature_store.settings import FeatureStoreSettings
from tests.integration.feast_projects import feast_project
from tests.integration.member_streams import MemberStream, forget_online, member_stream
from training import feature_tables, pipeline
from training.contract import LoanBook
from training.sources.synthetic import loan_book_from_world
from training.world import World, generate_world

pytestmark = pytest.mark.integration

PARTITIONS = 6
MOBILE_MONEY, REPAYMENT = "mobile_money_push", "repayment_push"
VIEWS = {
    "mobile_money_aggregates": F.MOBILE_MONEY_AGGREGATES,
    "mobile_money_sequence": F.MOBILE_MONEY_SEQUENCES,
    "repayment_history": (*F.REPAYMENT_AGGREGATES, *F.REPAYMENT_SEQUENCES),
}
FEATURES = [f for names in VIEWS.values() for f in names]
MM_FEATURES = [*F.MOBILE_MONEY_AGGREGATES, *F.MOBILE_MONEY_SEQUENCES]
RP_FEATURES = [*F.REPAYMENT_AGGREGATES, *F.REPAYMENT_SEQUENCES]
REFS = [f"{view}:{f}" for view, names in VIEWS.items() for f in names]


@dataclass(frozen=True)
class Loaded:
    world: World
    book: LoanBook
    tables: dict[str, OfflineTable]  # push source -> its offline table


@pytest.fixture(scope="module")
def loaded(infra: InfraSettings) -> Iterator[Loaded]:
    """A 120-member world's snapshots in the project's offline tables; the journals of earlier
    runs dropped first, so that the load starts from training's rows only."""
    with feast_project("feature_store_offline_test"):
        world = generate_world(120, seed=31)
        book = loan_book_from_world(world)
        schema = feature_tables.offline_schema(infra)
        tables = {
            MOBILE_MONEY: OfflineTable(schema, "mobile_money_features"),
            REPAYMENT: OfflineTable(schema, "repayment_features"),
        }
        asyncio.run(_sql(infra, *(f"DROP TABLE IF EXISTS {t.journal}" for t in tables.values())))
        pipeline.load_into_feast(infra, book, echo=lambda _line: None, materialize=False)
        yield Loaded(world, book, tables)


async def _sql(infra: InfraSettings, *statements: str) -> None:
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _fetch(infra: InfraSettings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _publish(infra: InfraSettings, topic: str, envelopes: list[EventEnvelope]) -> None:
    producer = create_producer(infra, client_id="feature-store-offline-test")
    await producer.start()
    try:
        await asyncio.gather(*[await publish(producer, topic, e) for e in envelopes])
    finally:
        await producer.stop()


async def _until(condition: Callable[[], bool], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polled state has no event to await
            await asyncio.sleep(0.1)


async def _poll(condition: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polled stores have no event to await
            await asyncio.sleep(0.2)


def _online(infra: InfraSettings, member: MemberStream) -> pd.Series:
    store = open_feature_store(infra)
    found = store.get_online_features(features=REFS, entity_rows=[{"member_id": member.key}])
    return found.to_df().iloc[0]


def _historical(infra: InfraSettings, member: MemberStream, *at: pd.Timestamp) -> pd.DataFrame:
    """Feast's point-in-time join for the member at these instants (training's read path)."""
    store = open_feature_store(infra)
    entities = pd.DataFrame({"member_id": [member.key] * len(at), "event_timestamp": list(at)})
    frame = store.get_historical_features(entity_df=entities, features=REFS).to_df()
    return frame.sort_values("event_timestamp").reset_index(drop=True)


async def _latest_offline(infra: InfraSettings, loaded: Loaded, member: MemberStream) -> pd.Series:
    """Feast's offline values of the member just after each source's latest streamed row (each
    view has its TTL: the repayments may end long before the latest transaction)."""
    loop = asyncio.get_running_loop()
    values = []
    for source, names in ((MOBILE_MONEY, MM_FEATURES), (REPAYMENT, RP_FEATURES)):
        last = (await _streamed(infra, loaded.tables[source], member))[-1]["event_timestamp"]
        at = pd.Timestamp(last) + pd.Timedelta(seconds=1)
        frame = await loop.run_in_executor(None, _historical, infra, member, at)
        values.append(frame.iloc[0][list(names)])
    return pd.concat(values)


def _same(got: pd.Series, want: pd.Series, names: list[str] = FEATURES) -> bool:
    for name in names:
        if got[name] is None or not np.allclose(
            np.asarray(got[name], dtype=float),
            np.asarray(want[name], dtype=float),
            rtol=0,
            atol=1e-9,
            equal_nan=True,
        ):
            return False
    return True


def _settings(infra: InfraSettings, suffix: str) -> FeatureStoreSettings:
    return FeatureStoreSettings(
        infra=infra,
        consumer_group=f"feature-store-offline-it-{suffix}",
        mobile_money_topic=f"test.fso.mm.{suffix}",
        repayments_topic=f"test.fso.rp.{suffix}",
        topic_partitions=PARTITIONS,
        batch_max_wait_ms=100,
        lag_every_s=0.5,
        retry_pending_every_s=1.0,
        metrics_port=0,
    )


async def _topics(infra: InfraSettings, settings: FeatureStoreSettings) -> None:
    await ensure_topics(
        infra.kafka_bootstrap,
        [
            TopicSpec(settings.mobile_money_topic, PARTITIONS, 1),
            TopicSpec(settings.repayments_topic, PARTITIONS, 1),
        ],
    )


def _settled(service: FeatureStoreService, member: MemberStream) -> bool:
    """Both of the member's states pushed and nothing owed to the offline store."""
    states = [stream.table.get(member.key) for stream in service.streams]
    return all(s and not s["pending"] and not s.get("offline") for s in states)


async def _streamed(infra: InfraSettings, table: OfflineTable, member: MemberStream) -> list[Any]:
    """The member's rows in the offline table that the stream wrote (its journal lists them)."""
    rows = await _fetch(
        infra,
        f"SELECT t.* FROM {table.table} t JOIN {table.journal} j"
        " USING (member_id, event_timestamp) WHERE member_id = $1 ORDER BY event_timestamp",
        member.key,
    )
    return [dict(r) for r in rows]


async def _count(infra: InfraSettings, table: OfflineTable, member: MemberStream) -> int:
    rows = await _fetch(
        infra, f"SELECT count(*) FROM {table.table} WHERE member_id = $1", member.key
    )
    return int(rows[0][0])


def _redelivered(topic: str) -> float:
    """Events the worker recognised as already in its state: a duplicate id, or one too old to
    change any row once the member's history was pruned after a push."""
    total = 0.0
    for outcome in ("duplicate", "stale"):
        labels = {"service": "feature_store", "topic": topic, "outcome": outcome}
        total += REGISTRY.get_sample_value("alama_events_consumed_total", labels) or 0.0
    return total


def _offline_writes(source: str, outcome: str) -> float:
    labels = {"push_source": source, "outcome": outcome}
    return REGISTRY.get_sample_value("alama_feature_store_offline_writes_total", labels) or 0.0


async def test_streamed_rows_reach_the_offline_store_point_in_time_once_and_survive_a_reload(
    infra: InfraSettings, loaded: Loaded
) -> None:
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(infra, suffix)
    await _topics(infra, settings)
    member = member_stream(loaded.world, 0)
    forget_online(infra, member.key)
    held_back = member.transactions.tail(2)  # sent after training's reload
    first = member.transactions.iloc[: -len(held_back)]
    await _publish(infra, settings.mobile_money_topic, member.transaction_envelopes(first))
    await _publish(infra, settings.repayments_topic, member.repayment_envelopes())
    loop = asyncio.get_running_loop()
    mm, rp = loaded.tables[MOBILE_MONEY], loaded.tables[REPAYMENT]

    service = create_feature_store_app(settings)
    await service.app.start()
    try:
        expected = member.expected(first)
        await _until(lambda: _settled(service, member))
        online = await loop.run_in_executor(None, _online, infra, member)
        assert _same(online, expected), "the online store has what training computes"

        # point in time: after the last streamed row, the streamed values (what online has);
        # just after training's last snapshot before the stream, training's row
        streamed = await _streamed(infra, mm, member)
        assert streamed and await _streamed(infra, rp, member)
        training_rows = await _fetch(
            infra,
            f"SELECT * FROM {mm.table} t WHERE member_id = $1 AND NOT EXISTS (SELECT 1 FROM"
            f" {mm.journal} j WHERE j.member_id = t.member_id"
            " AND j.event_timestamp = t.event_timestamp) ORDER BY event_timestamp",
            member.key,
        )
        first_streamed = pd.Timestamp(streamed[0]["event_timestamp"])
        before = [r for r in training_rows if pd.Timestamp(r["event_timestamp"]) < first_streamed]
        assert before, "the member has a training snapshot before the stream"
        snapshot = pd.Series(dict(before[-1]))
        then = pd.Timestamp(snapshot["event_timestamp"]) + pd.Timedelta(seconds=1)
        assert then < first_streamed
        latest = await _latest_offline(infra, loaded, member)
        assert _same(latest, online), "offline after the events is what online has"
        history = await loop.run_in_executor(None, _historical, infra, member, then)
        assert _same(history.iloc[0], snapshot, MM_FEATURES), "before them, training's row"
        assert not _same(history.iloc[0], online, MM_FEATURES)

        # a replay adds no rows: redelivered events change no state, and the same rows
        # written again (a worker that died after the write, before saving its state) are
        # recognised by their keys
        counts = (await _count(infra, mm, member), await _count(infra, rp, member))
        duplicates = member.transaction_envelopes(first)
        seen = _redelivered(settings.mobile_money_topic)
        await _publish(infra, settings.mobile_money_topic, duplicates)
        writer = PostgresOfflineWriter(infra, open_feature_store(infra))
        try:
            again = pd.DataFrame(streamed)
            assert await writer.write(MOBILE_MONEY, again) == 0
            assert await writer.write(MOBILE_MONEY, pd.concat([again, again])) == 0
        finally:
            await writer.close()
        await _until(lambda: _redelivered(settings.mobile_money_topic) == seen + len(duplicates))
        assert _settled(service, member)
        assert (await _count(infra, mm, member), await _count(infra, rp, member)) == counts

        # training reloads its snapshots (a new table swapped in): the streamed rows stay,
        # and rows streamed after the reload land in the new table
        tables = feature_tables.build_tables(loaded.book)
        await loop.run_in_executor(
            None, feature_tables.write_offline_tables, infra, tables, loaded.book.tenant
        )
        assert await _streamed(infra, mm, member) == streamed
        assert await _count(infra, mm, member) == counts[0]
        await _publish(infra, settings.mobile_money_topic, member.transaction_envelopes(held_back))
        final = member.expected()

        async def written_after_the_reload() -> bool:
            rows = await _streamed(infra, mm, member)
            return len(rows) > len(streamed) and _same(pd.Series(rows[-1]), final, MM_FEATURES)

        await _poll(written_after_the_reload)
        assert _same(await _latest_offline(infra, loaded, member), final)
    finally:
        await service.app.stop()
        service.pusher.close()
        if service.offline is not None:
            await service.offline.close()
        await service.lag.close()


class Unplugged:
    """The real offline writer behind a connection the test unplugs and plugs back in."""

    def __init__(self, writer: PostgresOfflineWriter) -> None:
        self.writer = writer
        self.down = True
        self.refused = 0

    async def write(self, push_source: str, rows: pd.DataFrame) -> int:
        if self.down:
            self.refused += 1
            raise ConnectionResetError("the offline store went away")
        return await self.writer.write(push_source, rows)

    async def close(self) -> None:
        await self.writer.close()


async def test_a_failed_offline_write_is_retried_without_holding_back_the_online_store(
    infra: InfraSettings, loaded: Loaded
) -> None:
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(infra, suffix)
    await _topics(infra, settings)
    member = member_stream(loaded.world, 1)
    forget_online(infra, member.key)
    mm = loaded.tables[MOBILE_MONEY]
    before = await _count(infra, mm, member)
    await _publish(infra, settings.repayments_topic, member.repayment_envelopes())
    await _publish(infra, settings.mobile_money_topic, member.transaction_envelopes())
    failed = _offline_writes(MOBILE_MONEY, "failed") + _offline_writes(REPAYMENT, "failed")
    offline = Unplugged(PostgresOfflineWriter(infra, open_feature_store(infra)))
    expected = member.expected()
    loop = asyncio.get_running_loop()

    service = create_feature_store_app(settings, offline=offline)
    await service.app.start()
    try:
        # the online store is up to date while the offline store refuses; the rows wait in
        # the member's state, and the timer keeps trying
        async def online_is_current() -> bool:
            return _same(await loop.run_in_executor(None, _online, infra, member), expected)

        await _poll(online_is_current)
        await _until(lambda: offline.refused >= 3)
        state = service.mobile_money.table[member.key]
        assert state["offline"] and not state["pending"]
        assert await _count(infra, mm, member) == before

        offline.down = False
        await _until(lambda: _settled(service, member))
        latest = await _latest_offline(infra, loaded, member)
    finally:
        await service.app.stop()
        service.pusher.close()
        await offline.close()
        await service.lag.close()
    refused = _offline_writes(MOBILE_MONEY, "failed") + _offline_writes(REPAYMENT, "failed")
    assert refused - failed == offline.refused
    assert await _count(infra, mm, member) > before
    assert _same(latest, expected), "the retried rows are what online served"
