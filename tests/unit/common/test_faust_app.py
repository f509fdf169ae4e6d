"""Faust agents decode the same envelopes as every other consumer (in-memory test context)."""

from types import SimpleNamespace
from typing import Any

from services.common.envelope import decode, encode, wrap
from services.common.faust_app import StreamConsumer, create_faust_app
from services.common.liveness import Liveness
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    TRANSACTION_KIND_INFLOW,
    MobileMoneyTransaction,
)
from services.common.settings import ServiceSettings


def _watchdog(consumer: Any, agent_topics: dict[str, set[str]]) -> StreamConsumer:
    """A StreamConsumer with only the stuck-partition watchdog's state, over a stand-in Faust
    consumer, its agents reading `agent_topics`."""
    layer = StreamConsumer.__new__(StreamConsumer)
    layer.app = SimpleNamespace(consumer=consumer)  # type: ignore[assignment]
    layer.service = "unit"
    layer._last_lag, layer._stuck_samples, layer._last_flight = {}, {}, {}
    layer._idle_samples = {}
    layer.liveness = Liveness(60.0)
    layer._agent_topics = agent_topics
    return layer


async def test_agent_reads_envelopes_in_test_context() -> None:
    app = create_faust_app(ServiceSettings(service_name="t"), app_id="alama-unit-faust")
    topic = app.topic("mobile_money.transactions")
    seen: list[MobileMoneyTransaction] = []

    @app.agent(topic)
    async def ingest(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            event = decode(value, MobileMoneyTransaction)
            seen.append(event.payload)
            yield event.payload.amount_kes

    txn = MobileMoneyTransaction(
        transaction_id="t-1", member_id="m-1", kind=TRANSACTION_KIND_INFLOW, amount_kes=1200.0
    )
    async with ingest.test_context() as agent:
        result = await agent.put(encode(wrap(txn, producer="mpesa", subject="m-1")))
        assert agent.results[result.message.offset] == 1200.0
    assert seen == [txn]


async def test_the_faust_consumer_fetches_as_the_settings_say() -> None:
    """Faust builds its aiokafka consumer with a 1-byte minimum (the broker answers every
    record alone); the app's consumer waits for the service's batch instead."""
    settings = ServiceSettings(
        service_name="t", consumer_fetch_min_bytes=65536, consumer_fetch_max_wait_ms=150
    )
    app = create_faust_app(settings, app_id="alama-unit-faust-fetch")
    thread = app.consumer._thread
    kafka_consumer = thread._create_worker_consumer(app.transport)
    try:
        assert kafka_consumer._fetch_min_bytes == 65536
        assert kafka_consumer._fetch_max_wait_ms == 150
    finally:
        await kafka_consumer.stop()


def test_factory_points_at_the_configured_broker() -> None:
    settings = ServiceSettings(service_name="t")
    app = create_faust_app(settings, app_id="alama-unit-faust-2")
    assert str(app.conf.broker[0]) == f"kafka://{settings.infra.kafka_bootstrap}"
    assert app.conf.topic_replication_factor == 1


def test_a_partition_whose_lag_stopped_with_nothing_in_flight_is_read_again() -> None:
    import asyncio
    from types import SimpleNamespace

    from aiokafka import TopicPartition
    from faust.types import TP

    from services.common.faust_app import STUCK_IN_FLIGHT_SAMPLES, STUCK_SAMPLES

    stuck, moving, held, busy = TP("mm", 0), TP("mm", 1), TP("mm", 2), TP("mm", 3)
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    consumer = SimpleNamespace(
        _active_partitions={moving, busy},
        _paused_partitions={held},
        _buffered_partitions={stuck},
        _committed_offset={stuck: 40, moving: 10, held: 5, busy: 7},
        _read_offset={stuck: 90},
        _acked={stuck: [91, 92]},  # acknowledged past a hole that will never be
        _gap={},
        _unacked_messages=[SimpleNamespace(tp=busy, offset=7)],  # a slow record, in flight
        seek=seek,
        assignment=lambda: {stuck, moving, held, busy},
    )
    layer = _watchdog(consumer, {"mm_agent": {"mm"}})
    layer.liveness.heartbeat("mm_agent").began()  # the agent has a batch in hand all along

    def sample(n: int) -> None:
        asyncio.run(
            layer._reread_stuck(
                {
                    TopicPartition("mm", 0): 100,  # never moves
                    TopicPartition("mm", 1): 50 - n,  # moves
                    TopicPartition("mm", 2): 100,  # paused by Faust on purpose: left alone
                    TopicPartition("mm", 3): 100,  # a record in flight: given longer
                }
            )
        )

    for n in range(STUCK_SAMPLES + 1):  # the first sample only sets the baseline
        assert not seeks
        sample(n)
    assert seeks == [(stuck, 40)]  # read again from the committed offset
    assert stuck in consumer._active_partitions and stuck not in consumer._buffered_partitions
    assert held not in consumer._active_partitions

    # the same record in flight sample after sample, the lag still: abandoned, read again
    for n in range(STUCK_SAMPLES + 1, STUCK_IN_FLIGHT_SAMPLES + 1):
        sample(n)
    assert (busy, 7) in seeks
    assert all(tp != moving for tp, _offset in seeks)


def test_a_record_in_flight_that_no_agent_has_in_hand_is_read_again_sooner() -> None:
    """A record Faust abandoned stays in its unacknowledged set for minutes, looking in flight;
    when no agent of the topic has anything in hand, the short bound applies."""
    import asyncio
    from types import SimpleNamespace

    from aiokafka import TopicPartition
    from faust.types import TP

    from services.common.faust_app import STUCK_SAMPLES

    abandoned = TP("mm", 0)
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    consumer = SimpleNamespace(
        _active_partitions={abandoned},
        _paused_partitions=set(),
        _buffered_partitions=set(),
        _committed_offset={abandoned: 7},
        _unacked_messages=[SimpleNamespace(tp=abandoned, offset=7)],
        seek=seek,
        assignment=lambda: {abandoned},
    )
    layer = _watchdog(consumer, {"mm_agent": {"mm"}, "other": {"rp"}})
    beat = layer.liveness.heartbeat("mm_agent")
    layer.liveness.heartbeat("other").began()  # another topic's agent at work changes nothing

    def sample() -> None:
        asyncio.run(layer._reread_stuck({TopicPartition("mm", 0): 100}))

    sample()  # the baseline
    beat.began()
    sample()  # the agent had a batch in hand at this sample: the idle run starts after it
    beat.finished()
    for _ in range(STUCK_SAMPLES - 1):
        sample()
        assert not seeks
    sample()
    assert seeks == [(abandoned, 7)]
