"""A Faust agent built by the shared factory consumes envelopes from the real broker, through
the shared consumer layer: poison dead-lettered, outages retried, a stalled agent noticed."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from typing import Any

import faust
import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.envelope import Event, decode, wrap
from services.common.faust_app import (
    CHANGELOG_COMPACTION,
    FaustRecord,
    StreamConsumer,
    create_faust_app,
    declare_table_topics,
    faust_sender,
)
from services.common.kafka import create_admin, create_producer, publish
from services.common.liveness import Liveness, serve_health
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.retries import RetryPolicy
from services.common.settings import ServiceSettings
from services.common.topics import TopicSpec, dead_letter_topic

from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration


async def test_faust_agent_consumes_envelopes_from_kafka(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    app = create_faust_app(service_settings, app_id=f"alama-it-{uuid.uuid4().hex[:8]}")
    seen: list[str] = []
    done = asyncio.Event()

    @app.agent(app.topic(scratch_topic.name))
    async def ingest(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            seen.append(decode(value, MobileMoneyTransaction).payload.transaction_id)
            if len(seen) >= 5:
                done.set()

    producer = create_producer(service_settings.infra, client_id="faust-test")
    await producer.start()
    try:
        for i in range(5):
            txn = MobileMoneyTransaction(transaction_id=f"txn-{i}", member_id=f"m-{i}")
            await (await publish(producer, scratch_topic.name, wrap(txn, producer="mpesa")))
    finally:
        await producer.stop()

    await app.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await app.stop()
    assert sorted(seen) == [f"txn-{i}" for i in range(5)]


# --- the shared consumer layer under Faust (issue 10, items 6 and 13) -----------------------

FAST = RetryPolicy(attempts=3, initial_s=0.01, max_s=0.05)


def _stream_consumer(
    app: faust.App, settings: ServiceSettings, topic: str, liveness: Liveness
) -> StreamConsumer:
    return StreamConsumer(
        app,
        service=settings.service_name,
        group_id=app.conf.id,
        topics=[topic],
        send=faust_sender(app, settings.service_name, timeout_s=30),
        infra=settings.infra,
        liveness=liveness,
        lag_every_s=0.2,
        retry=FAST,
    )


async def _publish_in_order(
    settings: ServiceSettings, topic: str, values: list[EventEnvelope]
) -> None:
    producer = create_producer(settings.infra, client_id="faust-test")
    await producer.start()
    try:
        for envelope in values:
            envelope.subject = "k"  # one partition: the agent meets them in this order
            await (await publish(producer, topic, envelope))
    finally:
        await producer.stop()


async def test_a_faust_agent_dead_letters_poison_retries_outages_and_goes_on(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    app = create_faust_app(service_settings, app_id=f"alama-it-{uuid.uuid4().hex[:8]}")
    consumer = _stream_consumer(app, service_settings, scratch_topic.name, Liveness(60))
    consumer.agent("ingest", [scratch_topic.name])
    far = MobileMoneyTransaction(transaction_id="far", member_id="m")
    far.occurred_at.seconds = 10**13  # ToDatetime raises: this stopped agents for good
    values = [
        wrap(far, producer="mpesa"),
        wrap(MobileMoneyTransaction(transaction_id="nul", member_id="m\x00"), producer="mpesa"),
        wrap(MobileMoneyTransaction(transaction_id="poison", member_id="m"), producer="mpesa"),
        wrap(MobileMoneyTransaction(transaction_id="flaky", member_id="m"), producer="mpesa"),
        wrap(MobileMoneyTransaction(transaction_id="good", member_id="m"), producer="mpesa"),
    ]
    outage = {"left": 2 * FAST.attempts}
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(event: Event[Any]) -> None:
        txn: MobileMoneyTransaction = event.payload
        txn.occurred_at.ToDatetime()
        if txn.transaction_id == "poison":
            raise ZeroDivisionError("a bug this record triggers")
        if txn.transaction_id == "flaky" and outage["left"]:
            outage["left"] -= 1
            raise ConnectionResetError(104, "Connection reset by peer")
        seen.append(txn.transaction_id)
        if txn.transaction_id == "good":
            done.set()

    @app.agent(app.topic(scratch_topic.name))
    async def ingest(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await consumer.process("ingest", FaustRecord.of(event), MobileMoneyTransaction, handle)

    await _publish_in_order(service_settings, scratch_topic.name, values)
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await app.stop()

    assert seen == ["flaky", "good"]  # the outage was waited out, nothing skipped or lost
    records = await read_topic(service_settings.infra, dead_letter_topic(scratch_topic.name), 3)
    letters = [decode(r.value, DeadLetter).payload for r in records]
    assert [(letter.reason, letter.source_offset) for letter in letters] == [
        ("timestamp_out_of_range", 0),
        ("nul_in_string", 1),
        ("handler_error", 2),
    ]
    assert "ZeroDivisionError: a bug this record triggers" in letters[2].detail
    assert all(letter.source_topic == scratch_topic.name for letter in letters)


async def test_the_liveness_probe_notices_a_stalled_agent_while_metrics_answers(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    app = create_faust_app(service_settings, app_id=f"alama-it-{uuid.uuid4().hex[:8]}")
    liveness = Liveness(threshold_s=1.0)
    consumer = _stream_consumer(app, service_settings, scratch_topic.name, liveness)
    consumer.agent("stuck", [scratch_topic.name])
    started, release = asyncio.Event(), asyncio.Event()

    async def hang(event: Event[Any]) -> None:
        started.set()
        await release.wait()  # a call that never returns (a hung connection, a lost future)

    @app.agent(app.topic(scratch_topic.name))
    async def stuck(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await consumer.process("stuck", FaustRecord.of(event), MobileMoneyTransaction, hang)

    server = serve_health(0, liveness, addr="127.0.0.1")
    loop = asyncio.get_running_loop()

    def probe(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    async def status(path: str) -> int:
        return await loop.run_in_executor(None, probe, path)

    await app.start()
    try:
        assert await status("/livez") == 200  # idle: alive
        txns = [MobileMoneyTransaction(transaction_id=f"t-{i}", member_id="m") for i in range(3)]
        await _publish_in_order(
            service_settings, scratch_topic.name, [wrap(t, producer="mpesa") for t in txns]
        )
        await asyncio.wait_for(started.wait(), timeout=60)
        async with asyncio.timeout(30):
            while await status("/livez") != 503:  # noqa: ASYNC110 - polled over HTTP
                await asyncio.sleep(0.2)
        assert await status("/metrics") == 200  # what the old probe asked: still fine
        release.set()
        async with asyncio.timeout(30):
            while await status("/livez") != 200:  # noqa: ASYNC110 - polled over HTTP
                await asyncio.sleep(0.2)
    finally:
        release.set()
        await app.stop()
        server.close()


async def test_a_fresh_worker_declares_its_changelogs_before_it_joins_and_writes_its_tables(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    """Faust creates a table's changelog only after joining the group; declared first, the
    changelog exists with the table's partitions (compacted) and the first write succeeds."""
    app = create_faust_app(service_settings, app_id=f"alama-it-{uuid.uuid4().hex[:8]}")
    table = app.Table(
        "seen",
        default=None,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        partitions=scratch_topic.partitions,  # keyed by the source partition, as erased_members
    )
    changelog = table.changelog_topic.get_topic_name()
    outcomes: list[str] = []
    done = asyncio.Event()

    @app.agent(app.topic(scratch_topic.name))
    async def remember(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            txn = decode(value, MobileMoneyTransaction).payload
            try:
                table[txn.member_id] = txn.transaction_id
                outcomes.append("written")
            except Exception as exc:  # reported, not retried: the failure under test
                outcomes.append(type(exc).__name__)
            done.set()

    changes = await declare_table_topics(app, service_settings.infra)
    assert [(c.topic, c.action) for c in changes] == [(changelog, "created")]
    assert await declare_table_topics(app, service_settings.infra) == []  # idempotent
    admin = create_admin(service_settings.infra)
    await admin.start()
    try:
        [described] = await admin.describe_topics([changelog])
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, changelog)]
        )
    finally:
        await admin.close()
    assert len(described["partitions"]) == scratch_topic.partitions
    entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"
    # compacted often enough that a restarted worker replays about one state per key
    assert {k: entries[k] for k, _v in CHANGELOG_COMPACTION} == dict(CHANGELOG_COMPACTION)

    await app.start()
    try:
        producer = create_producer(service_settings.infra, client_id="faust-test")
        await producer.start()
        try:
            txn = MobileMoneyTransaction(transaction_id="txn-1", member_id="m-1")
            await (await publish(producer, scratch_topic.name, wrap(txn, producer="mpesa")))
        finally:
            await producer.stop()
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await app.stop()
    assert outcomes == ["written"]


async def test_a_partition_whose_commit_stopped_behind_dropped_records_is_read_again(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    """After a rebalance Faust's fetch loop can keep a stale read offset: it drops the records
    below it unacknowledged and the partition's commit never moves again (the chaos battery's
    stall). The consumer layer notices the lag stand still with nothing in flight and re-reads
    the partition from its committed offset; nothing is lost and the lag drains."""
    from services.common.faust_app import FETCH_RESTARTS

    app = create_faust_app(service_settings, app_id=f"alama-it-{uuid.uuid4().hex[:8]}")
    app.conf.broker_commit_every = 1
    consumer = _stream_consumer(app, service_settings, scratch_topic.name, Liveness(60))
    consumer.agent("ingest", [scratch_topic.name])
    seen: set[str] = set()

    async def handle(event: Event[Any]) -> None:
        seen.add(event.payload.transaction_id)

    @app.agent(app.topic(scratch_topic.name))
    async def ingest(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await consumer.process("ingest", FaustRecord.of(event), MobileMoneyTransaction, handle)

    def batch(start: int, stop: int) -> list[EventEnvelope]:
        return [
            wrap(MobileMoneyTransaction(transaction_id=f"t{i}", member_id="m"), producer="mpesa")
            for i in range(start, stop)
        ]

    rereads = FETCH_RESTARTS.labels(service_settings.service_name, scratch_topic.name)
    before = rereads._value.get()
    await app.start()
    try:
        await _publish_in_order(service_settings, scratch_topic.name, batch(0, 5))
        committed = app.consumer._committed_offset  # type: ignore[attr-defined]
        async with asyncio.timeout(60):
            while not any(offset == 5 for offset in committed.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        [tp] = [tp for tp, offset in committed.items() if offset == 5]
        # what the race leaves: a read offset ahead of the committed one (records 5..11 will
        # be dropped by the fetch loop, never acknowledged)
        app.consumer._read_offset[tp] = 12  # type: ignore[attr-defined]
        await _publish_in_order(service_settings, scratch_topic.name, batch(5, 20))
        async with asyncio.timeout(60):
            while committed.get(tp) != 20:  # noqa: ASYNC110 - Faust's own bookkeeping
                await asyncio.sleep(0.1)
    finally:
        await app.stop()
    assert seen == {f"t{i}" for i in range(20)}
    assert rereads._value.get() > before
