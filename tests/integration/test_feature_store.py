"""The feature_store worker on the real Kafka, Redis and PostgreSQL.

A tiny world is loaded into its own Feast project (training's offline tables, materialized
online); a member's wallet transactions and repayments are then published as envelopes with
timestamps after everything training stored, and the worker must leave in Feast's online store
exactly what `services.common.features` computes from those events, ignore a redelivered
transaction id, dead-letter a bad record without stopping, restore its state after a restart
and report a consumer lag of 0 once the stream is consumed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from services.common import features as F
from services.common.envelope import decode, wrap
from services.common.feast_config import FEATURE_SERVICE, open_feature_store
from services.common.kafka import create_producer, publish
from services.common.members import DEV_TENANT
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    MobileMoneyTransaction,
    TransactionKind,
)
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, dead_letter_topic, ensure_topics
from services.feature_store.agents import create_feature_store_app
from services.feature_store.push import FeastPusher, OfflinePushUnsupported
from services.feature_store.settings import FeatureStoreSettings, PushTarget
from tests.integration.feast_projects import feast_project
from tests.integration.kafka_helpers import read_topic
from tests.integration.member_streams import MemberStream, forget_online
from tests.integration.member_streams import member_stream as shared_member_stream
from training import pipeline
from training.profiles import get_profile
from training.sources.synthetic import loan_book_from_world
from training.world import World, generate_world

pytestmark = pytest.mark.integration

PARTITIONS = 6
FEATURES = (
    *F.MOBILE_MONEY_AGGREGATES,
    *F.MOBILE_MONEY_SEQUENCES,
    *F.REPAYMENT_AGGREGATES,
    *F.REPAYMENT_SEQUENCES,
)


@pytest.fixture(scope="module")
def feast_env() -> Iterator[None]:
    with feast_project("feature_store_test"):
        yield


@pytest.fixture(scope="module")
def world(infra: InfraSettings, feast_env: None) -> World:
    profile = get_profile("tiny")
    world = generate_world(profile.n_members, profile.seed)
    pipeline.load_into_feast(infra, loan_book_from_world(world), echo=lambda _line: None)
    return world


def member_stream(world: World) -> MemberStream:
    """The first member with both histories, moved after every snapshot training stored."""
    member = shared_member_stream(world)
    stored = pd.to_datetime(world.applications["applied_at"], utc=True).max() + pd.Timedelta(
        days=14
    )
    latest = max(member.transactions["occurred_at"].max(), member.repayments["recorded_at"].max())
    assert latest > stored, "the member's events must be newer than training's rows"
    return member


async def _publish(infra: InfraSettings, topic: str, values: list[EventEnvelope | bytes]) -> None:
    producer = create_producer(infra, client_id="feature-store-test")
    await producer.start()
    try:
        pending = []
        for value in values:
            if isinstance(value, EventEnvelope):
                pending.append(await publish(producer, topic, value))
            else:
                pending.append(await producer.send(topic, value, key=b"M-bad"))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _until(condition: Callable[[], bool], within: float = 90.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polled state has no event to await
            await asyncio.sleep(0.1)


def _online(member: MemberStream) -> pd.Series:
    """What scoring would read: the credit_scoring_v1 feature service for this member."""
    store = open_feature_store(InfraSettings())
    service = store.get_feature_service(FEATURE_SERVICE)
    row = {
        "member_id": member.key,
        "amount_kes": 10_000.0,
        "term_months": 6.0,
        "product": "emergency",
    }
    return store.get_online_features(features=service, entity_rows=[row]).to_df().iloc[0]


def _same(online: pd.Series, expected: pd.Series) -> bool:
    for name in FEATURES:
        got, want = online[name], expected[name]
        if got is None or not np.allclose(
            np.asarray(got, dtype=float), np.asarray(want), rtol=0, atol=1e-9
        ):
            return False
    return True


async def _online_equals(member: MemberStream, expected: pd.Series, within: float = 90) -> None:
    loop = asyncio.get_running_loop()
    online = pd.Series(dtype=object)
    try:
        async with asyncio.timeout(within):
            while True:
                online = await loop.run_in_executor(None, _online, member)
                if _same(online, expected):
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        diff = {
            n: (online.get(n), expected[n])
            for n in F.MOBILE_MONEY_AGGREGATES
            if not np.isclose(online.get(n) or np.nan, expected[n])
        }
        raise AssertionError(f"online features never matched; aggregates off: {diff}") from None


def _lag(topics: list[str]) -> list[float | None]:
    return [
        REGISTRY.get_sample_value(
            "alama_consumer_lag",
            {"service": "feature_store", "topic": t, "partition": str(p)},
        )
        for t in topics
        for p in range(PARTITIONS)
    ]


def _consumed(topic: str, outcome: str) -> float:
    labels = {"service": "feature_store", "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("alama_events_consumed_total", labels) or 0.0


def _settings(infra: InfraSettings, app_id: str, mm: str, rp: str) -> FeatureStoreSettings:
    return FeatureStoreSettings(
        infra=infra,
        consumer_group=app_id,
        mobile_money_topic=mm,
        repayments_topic=rp,
        topic_partitions=PARTITIONS,
        batch_max_wait_ms=100,
        lag_every_s=0.5,
        retry_pending_every_s=1.0,
        metrics_port=0,
    )


async def test_streamed_events_reach_feast_exactly_as_training_computes_them(
    infra: InfraSettings, world: World
) -> None:
    suffix = uuid.uuid4().hex[:10]
    mm_topic, rp_topic = f"test.fs.mm.{suffix}", f"test.fs.rp.{suffix}"
    await ensure_topics(
        infra.kafka_bootstrap,
        [TopicSpec(mm_topic, PARTITIONS, 1), TopicSpec(rp_topic, PARTITIONS, 1)],
    )
    settings = _settings(infra, f"feature-store-it-{suffix}", mm_topic, rp_topic)
    member = member_stream(world)
    forget_online(infra, member.key)
    held_back = member.transactions.tail(3)  # sent after a restart
    first = member.transactions.iloc[: -len(held_back)]
    envelopes = member.transaction_envelopes(first)
    half = len(envelopes) // 2
    bad = MobileMoneyTransaction(
        transaction_id="bad-1",
        tenant_id=DEV_TENANT,
        member_id=member.member_id,
        kind=TransactionKind.TRANSACTION_KIND_OUTFLOW,
        amount_kes=-50.0,
    )
    far = MobileMoneyTransaction()
    far.CopyFrom(bad)
    far.transaction_id, far.amount_kes = "far-1", 50.0
    far.occurred_at.seconds = 10**13  # stopped the agent for good before decode checked times
    await _publish(
        infra,
        mm_topic,
        [
            *envelopes[:half],
            wrap(bad, producer="mobile-money", subject=member.key),
            wrap(far, producer="mobile-money", subject=member.key),
            *envelopes[half:],
        ],
    )
    await _publish(infra, rp_topic, list(member.repayment_envelopes()))

    service = create_feature_store_app(settings)
    waiting = await service.lag.sample()  # before the worker starts: everything published
    assert waiting.total == len(envelopes) + 2 + len(member.repayments)
    await service.app.start()
    try:
        expected = member.expected(first)
        await _online_equals(member, expected)

        # bad records are dead-lettered with their reason; the records after them were processed
        letters = await read_topic(infra, dead_letter_topic(mm_topic), 2, within=30)
        reasons = [decode(r.value, DeadLetter).payload.reason for r in letters]
        assert reasons == ["negative_amount", "timestamp_out_of_range"]

        # a redelivered transaction id (even with another amount) changes nothing
        duplicates = member.transaction_envelopes(first.tail(4).assign(amount_kes=1.0))
        before = _consumed(mm_topic, "duplicate")
        await _publish(infra, mm_topic, list(duplicates))
        await _until(lambda: _consumed(mm_topic, "duplicate") == before + len(duplicates))
        assert _same(
            await asyncio.get_running_loop().run_in_executor(None, _online, member), expected
        )

        # once everything is consumed and committed, the lag gauges read 0 on every partition
        await _until(lambda: _lag([mm_topic, rp_topic]) == [0.0] * 2 * PARTITIONS)
    finally:
        await service.app.stop()
        service.pusher.close()
        await service.lag.close()

    # a restarted worker restores the member's history from the changelog: three more
    # transactions give features over all of them, not just the three
    restarted = create_feature_store_app(settings)
    await _publish(infra, mm_topic, list(member.transaction_envelopes(held_back)))
    await restarted.app.start()
    try:
        await _online_equals(member, member.expected())
    finally:
        await restarted.app.stop()
        restarted.pusher.close()
        await restarted.lag.close()


def test_pushes_go_online_through_feast_and_offline_into_the_push_sources_tables(
    infra: InfraSettings, world: World
) -> None:
    """Feast 0.67's PostgreSQL offline store has no offline_write_batch, so Feast pushes online
    only; by default the service writes the same rows itself into the table each push source's
    batch source reads, as the registry holds it, and refuses a batch source that is not one
    table (services.feature_store.offline; test_feature_store_offline.py streams through it)."""
    from feast.errors import PushSourceNotFoundException
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    from services.feature_store.offline import batch_table, offline_table

    settings = FeatureStoreSettings(infra=infra, metrics_port=0)
    assert settings.push_target is PushTarget.ONLINE_AND_OFFLINE
    pusher = FeastPusher.open(settings)
    try:
        assert pusher.mode.name == "ONLINE"
        # the feature views each push source feeds, as Feast's push would resolve them
        assert pusher.feature_views(settings.mobile_money_push_source) == [
            "mobile_money_aggregates",
            "mobile_money_sequence",
        ]
        assert pusher.feature_views(settings.repayment_push_source) == ["repayment_history"]
        with pytest.raises(PushSourceNotFoundException):
            pusher.feature_views("no_such_push_source")
        schema = str(pusher.store.config.offline_store.db_schema)
        mobile_money = offline_table(pusher.store, settings.mobile_money_push_source)
        repayments = offline_table(pusher.store, settings.repayment_push_source)
    finally:
        pusher.close()
    assert mobile_money.table == f"{schema}.mobile_money_features"
    assert repayments.table == f"{schema}.repayment_features"
    joined = PostgreSQLSource(
        name="joined",
        query=f"SELECT * FROM {schema}.a JOIN {schema}.b USING (member_id)",
        timestamp_field="event_timestamp",
    )
    with pytest.raises(OfflinePushUnsupported, match="not one table"):
        batch_table(joined, schema)


def test_the_pushers_rows_are_byte_for_byte_what_feasts_write_to_online_store_writes(
    infra: InfraSettings, world: World
) -> None:
    """The pusher writes plain views without Feast's Arrow round trip; the Redis hash it leaves
    for a member (every feature's serialised ValueProto and the view's timestamp) must be the
    one `write_to_online_store` leaves for the same row: NaN, lists, empty lists and all."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from services.feature_store.push import plain_view

    settings = FeatureStoreSettings(infra=infra, metrics_port=0)
    pusher = FeastPusher.open(settings)
    store = pusher.store
    client = RedisOnlineStore()._get_client(store.config.online_store)
    suffix = uuid.uuid4().hex[:8]
    rng = np.random.default_rng(7)

    def key(member: str) -> bytes:
        entity = EntityKey(join_keys=["member_id"], entity_values=[Value(string_val=member)])
        return _redis_key(
            store.config.project,
            entity,
            entity_key_serialization_version=store.config.entity_key_serialization_version,
        )

    try:
        for push_source in (settings.mobile_money_push_source, settings.repayment_push_source):
            views = [store.get_feature_view(name) for name in pusher.feature_views(push_source)]
            assert all(plain_view(v) for v in views)
            columns: dict[str, list[object]] = {}
            for view in views:
                for field in view.features:
                    if field.dtype.to_value_type().name.endswith("_LIST"):
                        columns[field.name] = [rng.random(24).tolist(), [], [0.5, float("nan")]]
                    else:
                        columns[field.name] = [float(rng.random()), float("nan"), 0.0]
            stamps = pd.to_datetime(
                [
                    "2026-03-01 10:00:00.123456",
                    "2026-04-02 00:00:00.000000",
                    "2026-05-03 23:59:59.5",
                ],
                utc=True,
            )
            members = [f"fs-bytes-{suffix}-{i}" for i in range(3)]
            for view in views:  # Feast's own path for members 0-2 ...
                store.write_to_online_store(
                    view.name,
                    pd.DataFrame(
                        {"member_id": members, "event_timestamp": stamps}
                        | {f.name: columns[f.name] for f in view.features}
                    ),
                )
            twins = [f"{m}-twin" for m in members]  # ... the pusher's for their twins
            asyncio.run(
                pusher.push(
                    push_source,
                    pd.DataFrame({"member_id": twins, "event_timestamp": stamps} | columns),
                )
            )
            for member, twin in zip(members, twins, strict=True):
                feast_wrote, pusher_wrote = client.hgetall(key(member)), client.hgetall(key(twin))
                assert feast_wrote and pusher_wrote == feast_wrote, (push_source, member)
    finally:
        pusher.close()
        client.close()
