"""Envelopes over the real broker: consumer groups, trace context, commits, dead letters, and
poison that never stops a consumer (outages retried, poison dead-lettered, rebalances survived)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, OutOfOrderSequenceNumber
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from services.common.applications import DECIDED_HEADER, decided_header
from services.common.envelope import Event, decode, wrap
from services.common.errors import InvalidEvent
from services.common.kafka import (
    REASON_HEADER,
    EventConsumer,
    Route,
    create_producer,
    publish,
    publish_many,
)
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.retries import RetryPolicy, is_transient
from services.common.settings import ServiceSettings
from services.common.topics import TopicSpec, dead_letter_topic

from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def application(i: int) -> LoanApplicationSubmitted:
    return LoanApplicationSubmitted(
        application_id=f"app-{i}", member_id=f"m-{i}", amount_kes=1000.0 * (i + 1), term_months=6
    )


async def consume_until(
    settings: ServiceSettings,
    topic: str,
    group_id: str,
    wanted: int,
    handler_extra: Any = None,
) -> list[tuple[Event[Any], trace.SpanContext]]:
    """Run an EventConsumer until `wanted` events were handled, then stop it gracefully."""
    seen: list[tuple[Event[Any], trace.SpanContext]] = []
    done = asyncio.Event()

    async def handle(event: Event[Any], record: ConsumerRecord) -> None:
        if handler_extra is not None:
            await handler_extra(event)
        seen.append((event, trace.get_current_span().get_span_context()))
        if len(seen) >= wanted:
            done.set()

    consumer = EventConsumer(
        settings,
        group_id=group_id,
        routes={topic: Route((LoanApplicationSubmitted,), handle)},
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=45)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, timeout=30)
    return seen


async def test_envelope_reaches_a_consumer_group_with_its_trace_context(
    service_settings: ServiceSettings, scratch_topic: TopicSpec, spans: InMemorySpanExporter
) -> None:
    producer = create_producer(service_settings.infra, client_id="test-producer")
    await producer.start()
    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("submit application") as span:
            envelope = wrap(application(1), producer="core-banking", subject="app-1")
            await (await publish(producer, scratch_topic.name, envelope))
            sent = span.get_span_context()
    finally:
        await producer.stop()

    group = f"group-{uuid.uuid4().hex}"
    [(event, received)] = await consume_until(service_settings, scratch_topic.name, group, 1)

    assert event.event_id == envelope.event_id
    assert event.payload == application(1)
    assert received.trace_id == sent.trace_id
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    consumer_span = next(
        s for s in spans.get_finished_spans() if s.context.span_id == received.span_id
    )
    assert consumer_span.parent is not None and consumer_span.parent.span_id == sent.span_id
    assert consumer_span.attributes["messaging.destination.name"] == scratch_topic.name

    # The group committed past the record after handling it: a restart would not replay it.
    reader = AIOKafkaConsumer(
        bootstrap_servers=service_settings.infra.kafka_bootstrap, group_id=group
    )
    await reader.start()
    try:
        partitions = [TopicPartition(scratch_topic.name, p) for p in range(3)]
        ends = await reader.end_offsets(partitions)
        committed = {tp: await reader.committed(tp) or 0 for tp in partitions}
    finally:
        await reader.stop()
    assert committed == ends


async def test_bad_records_go_to_the_dead_letter_topic_and_the_consumer_goes_on(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    producer = create_producer(service_settings.infra, client_id="test-producer")
    await producer.start()
    garbage = b"\x08\x96\x01 definitely not an envelope \xff"
    try:
        # One partition (by key) so the order is fixed: garbage, rejected-by-handler, good.
        await producer.send_and_wait(scratch_topic.name, garbage, key=b"k")
        await (
            await publish(
                producer,
                scratch_topic.name,
                wrap(application(-1), producer="t", subject="k"),
            )
        )
        good = wrap(application(2), producer="t", subject="k")
        await (await publish(producer, scratch_topic.name, good))
    finally:
        await producer.stop()

    async def refuse_negative(event: Event[Any]) -> None:
        if event.payload.amount_kes <= 0:
            raise InvalidEvent("invalid_amount", "amount_kes must be positive")

    seen = await consume_until(
        service_settings, scratch_topic.name, f"group-{uuid.uuid4().hex}", 1, refuse_negative
    )
    assert [e.event_id for e, _ in seen] == [good.event_id]

    records = await read_topic(service_settings.infra, dead_letter_topic(scratch_topic.name), 2)
    letters = [decode(r.value, DeadLetter).payload for r in records]
    assert [letter.reason for letter in letters] == ["undecodable_envelope", "invalid_amount"]
    assert letters[0].source_value == garbage
    assert letters[0].source_topic == scratch_topic.name
    assert letters[0].source_key == b"k"
    assert "amount_kes must be positive" in letters[1].detail
    assert dict(records[1].headers)[REASON_HEADER] == b"invalid_amount"
    # the consumer exported its lag for the partition it read: caught up, so zero
    lags = [
        REGISTRY.get_sample_value(
            "alama_consumer_lag",
            {"service": service_settings.service_name, "topic": scratch_topic.name, "partition": p},
        )
        for p in ("0", "1", "2")
    ]
    assert [lag for lag in lags if lag is not None] == [0.0]


# --- poison never stops a consumer (issue 10, item 6) ---------------------------------------

FAST = RetryPolicy(attempts=3, initial_s=0.01, max_s=0.05)


async def _publish_on_one_partition(
    settings: ServiceSettings, topic: str, values: list[EventEnvelope | bytes]
) -> None:
    """One key, so one partition: the consumer meets the records in this order."""
    producer = create_producer(settings.infra, client_id="test-producer")
    await producer.start()
    try:
        for value in values:
            if isinstance(value, bytes):
                await producer.send_and_wait(topic, value, key=b"k")
            else:
                value.subject = "k"
                await (await publish(producer, topic, value))
    finally:
        await producer.stop()


async def _committed_to_the_end(settings: ServiceSettings, topic: str, group: str) -> bool:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.infra.kafka_bootstrap, group_id=group)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await reader.end_offsets(partitions)
        committed = {tp: await reader.committed(tp) or 0 for tp in partitions}
    finally:
        await reader.stop()
    return committed == ends


async def _run_until(consumer: EventConsumer, condition: Callable[[], bool]) -> None:
    """Run the consumer until `condition` holds, then stop it; its task must end cleanly."""
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(45):
            while not condition():
                assert not task.done(), f"the consumer stopped: {task.exception()!r}"
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, timeout=30)


def _far_future_application() -> EventEnvelope:
    far = application(7)
    far.applied_at.seconds = 10**13  # beyond what a datetime holds: ToDatetime raises
    return wrap(far, producer="t")


async def test_poison_records_are_dead_lettered_with_their_reason_and_the_consumer_goes_on(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    poison = wrap(application(666), producer="t")
    nul = wrap(
        LoanApplicationSubmitted(application_id="app-nul", attributes={"note": "a\x00b"}),
        producer="t",
    )
    good = wrap(application(2), producer="t")
    await _publish_on_one_partition(
        service_settings, scratch_topic.name, [_far_future_application(), nul, poison, good]
    )
    handled: list[str] = []
    calls: dict[str, int] = {}

    async def handle(event: Event[Any], record: ConsumerRecord) -> None:
        calls[event.event_id] = calls.get(event.event_id, 0) + 1
        event.payload.applied_at.ToDatetime()  # what stopped a consumer on a far-future time
        if event.payload.application_id == "app-666":
            raise KeyError("a bug this record triggers")
        handled.append(event.payload.application_id)

    group = f"group-{uuid.uuid4().hex}"
    consumer = EventConsumer(
        service_settings,
        group_id=group,
        routes={scratch_topic.name: Route((LoanApplicationSubmitted,), handle)},
        retry=FAST,
    )
    await _run_until(consumer, lambda: handled == ["app-2"])

    records = await read_topic(service_settings.infra, dead_letter_topic(scratch_topic.name), 3)
    letters = [decode(r.value, DeadLetter).payload for r in records]
    assert [letter.reason for letter in letters] == [
        "timestamp_out_of_range",
        "nul_in_string",
        "handler_error",
    ]
    assert "KeyError" in letters[2].detail and "a bug this record triggers" in letters[2].detail
    assert calls[poison.event_id] == FAST.attempts  # bounded retries, then the dead letter
    assert await _committed_to_the_end(service_settings, scratch_topic.name, group)


async def test_a_handler_failing_on_an_outage_is_retried_and_loses_nothing(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    """More failures than the poison budget: an outage is never dead-lettered or skipped."""
    envelopes = [wrap(application(i), producer="t") for i in range(5)]
    await _publish_on_one_partition(service_settings, scratch_topic.name, list(envelopes))
    outage = {"left": 2 * FAST.attempts}
    handled: list[str] = []

    async def handle(event: Event[Any], record: ConsumerRecord) -> None:
        if event.payload.application_id == "app-2" and outage["left"]:
            outage["left"] -= 1
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 16379)")
        handled.append(event.payload.application_id)

    group = f"group-{uuid.uuid4().hex}"
    consumer = EventConsumer(
        service_settings,
        group_id=group,
        routes={scratch_topic.name: Route((LoanApplicationSubmitted,), handle)},
        retry=FAST,
    )
    await _run_until(consumer, lambda: len(handled) == 5)

    assert handled == [f"app-{i}" for i in range(5)]  # in order: nothing skipped past the outage
    assert outage["left"] == 0
    assert await _committed_to_the_end(service_settings, scratch_topic.name, group)
    dead = dead_letter_topic(scratch_topic.name)
    assert await _end_offsets(service_settings, dead) == 0


async def test_records_a_route_skips_by_header_are_committed_unread(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    """Scoring's consumer drops the applications it decided synchronously by their header: not
    decoded (so not even a malformed one is dead-lettered here), not handled, committed."""
    producer = create_producer(service_settings.infra, client_id="test-producer")
    await producer.start()
    decided = [(DECIDED_HEADER, b"decision-1")]
    try:
        for envelope, headers in [
            (wrap(application(0), producer="t", subject="k"), []),
            (wrap(application(1), producer="t", subject="k"), decided),
            (wrap(application(3), producer="t", subject="k"), []),
        ]:
            await asyncio.gather(
                *await publish_many(producer, scratch_topic.name, [envelope], headers=[headers])
            )
        await producer.send_and_wait(
            scratch_topic.name, b"\xff not an envelope", key=b"k", headers=decided
        )
        await asyncio.gather(
            *await publish_many(
                producer, scratch_topic.name, [wrap(application(4), producer="t", subject="k")]
            )
        )
    finally:
        await producer.stop()
    handled: list[str] = []

    async def handle(event: Event[Any], record: ConsumerRecord) -> None:
        handled.append(event.payload.application_id)

    def skipped() -> float:
        labels = {"service": service_settings.service_name, "topic": scratch_topic.name}
        return (
            REGISTRY.get_sample_value(
                "alama_events_consumed_total", labels | {"outcome": "skipped"}
            )
            or 0.0
        )

    before = skipped()
    group = f"group-{uuid.uuid4().hex}"
    consumer = EventConsumer(
        service_settings,
        group_id=group,
        routes={
            scratch_topic.name: Route((LoanApplicationSubmitted,), handle, skip=decided_header)
        },
        retry=FAST,
    )
    await _run_until(consumer, lambda: len(handled) >= 3)

    assert handled == ["app-0", "app-3", "app-4"]
    assert skipped() == before + 2
    assert await _committed_to_the_end(service_settings, scratch_topic.name, group)
    assert await _end_offsets(service_settings, dead_letter_topic(scratch_topic.name)) == 0


class Buffering:
    """A micro-batching pipeline like scoring's: handlers buffer, the flush takes the buffer at
    its start and fails as told."""

    def __init__(self, fail: Callable[[list[str]], None]) -> None:
        self.pending: list[str] = []
        self.flushed: list[str] = []
        self.flushes = 0
        self.fail = fail

    async def handle(self, event: Event[Any], record: ConsumerRecord) -> None:
        self.pending.append(event.payload.application_id)

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        self.flushes += 1
        self.fail(batch)
        self.flushed.extend(batch)


async def _end_offsets(settings: ServiceSettings, topic: str) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.infra.kafka_bootstrap)
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await reader.end_offsets([tp]))[tp]
    finally:
        await reader.stop()


async def test_a_flush_failing_on_an_outage_is_retried_with_the_whole_batch(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    await _publish_on_one_partition(
        service_settings, scratch_topic.name, [wrap(application(i), producer="t") for i in range(6)]
    )
    outage = {"left": 2 * FAST.attempts}

    def postgres_away(batch: list[str]) -> None:
        if outage["left"]:
            outage["left"] -= 1
            raise OSError(104, "Connection reset by peer") from ConnectionResetError()

    pipeline = Buffering(postgres_away)
    group = f"group-{uuid.uuid4().hex}"
    consumer = EventConsumer(
        service_settings,
        group_id=group,
        routes={scratch_topic.name: Route((LoanApplicationSubmitted,), pipeline.handle)},
        on_batch=pipeline.flush,
        retry=FAST,
    )
    await _run_until(consumer, lambda: len(set(pipeline.flushed)) == 6)

    assert sorted(set(pipeline.flushed)) == sorted(f"app-{i}" for i in range(6))
    assert outage["left"] == 0
    assert await _committed_to_the_end(service_settings, scratch_topic.name, group)
    assert await _end_offsets(service_settings, dead_letter_topic(scratch_topic.name)) == 0


async def test_a_flush_with_one_poison_record_dead_letters_only_that_record(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    values = [wrap(application(i), producer="t") for i in (1, 2, 666, 4, 5)]
    await _publish_on_one_partition(service_settings, scratch_topic.name, list(values))

    def refuse_poison(batch: list[str]) -> None:
        if "app-666" in batch:
            raise ValueError("invalid input syntax for type numeric")

    pipeline = Buffering(refuse_poison)
    group = f"group-{uuid.uuid4().hex}"
    consumer = EventConsumer(
        service_settings,
        group_id=group,
        routes={scratch_topic.name: Route((LoanApplicationSubmitted,), pipeline.handle)},
        on_batch=pipeline.flush,
        retry=FAST,
    )
    await _run_until(
        consumer, lambda: set(pipeline.flushed) == {"app-1", "app-2", "app-4", "app-5"}
    )
    records = await read_topic(service_settings.infra, dead_letter_topic(scratch_topic.name), 1)

    letter = decode(records[0].value, DeadLetter).payload
    assert letter.reason == "handler_error"
    assert "invalid input syntax" in letter.detail
    assert decode(letter.source_value, LoanApplicationSubmitted).payload.application_id == (
        "app-666"
    )
    assert await _end_offsets(service_settings, dead_letter_topic(scratch_topic.name)) == 1
    assert await _committed_to_the_end(service_settings, scratch_topic.name, group)


async def test_a_commit_refused_by_a_rebalance_is_not_fatal(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    await _publish_on_one_partition(
        service_settings, scratch_topic.name, [wrap(application(1), producer="t")]
    )
    handled: list[str] = []

    async def handle(event: Event[Any], record: ConsumerRecord) -> None:
        handled.append(event.payload.application_id)

    group = f"group-{uuid.uuid4().hex}"
    consumer = EventConsumer(
        service_settings,
        group_id=group,
        routes={scratch_topic.name: Route((LoanApplicationSubmitted,), handle)},
        retry=FAST,
    )
    commit = consumer.consumer.commit
    refused: list[int] = []

    async def commit_after_a_rebalance(*args: Any, **kwargs: Any) -> None:
        if not refused:
            refused.append(1)
            raise CommitFailedError("the group has already rebalanced")
        await commit(*args, **kwargs)

    consumer.consumer.commit = commit_after_a_rebalance  # type: ignore[method-assign]
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(45):
            while not handled:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await _publish_on_one_partition(
                service_settings, scratch_topic.name, [wrap(application(2), producer="t")]
            )
            while len(handled) < 2:
                assert not task.done(), f"the consumer stopped: {task.exception()!r}"
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, timeout=30)
    assert refused and handled == ["app-1", "app-2"]
    assert await _committed_to_the_end(service_settings, scratch_topic.name, group)


async def test_a_producer_the_broker_forgot_starts_a_new_producer_id_and_sends_again(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    """The broker losing a producer's sequence (an unclean restart) ends aiokafka's sender for
    good; the project's producer sends again on its next call, under a new producer id."""
    producer = create_producer(service_settings.infra, client_id="test-healing")
    await producer.start()
    tp = TopicPartition(scratch_topic.name, 0)
    try:
        await producer.send_and_wait(scratch_topic.name, b"before", partition=0)
        first_id = producer._txn_manager.producer_id
        # what the broker sees after losing records: a gap in this producer's sequence
        producer._txn_manager.increment_sequence_number(tp, 7)
        with pytest.raises(OutOfOrderSequenceNumber):
            await producer.send_and_wait(scratch_topic.name, b"lost", partition=0)
        after = await producer.send_and_wait(scratch_topic.name, b"after", partition=0)
        assert producer._txn_manager.producer_id != first_id  # a new producer id
        assert after.offset == 1
    finally:
        await producer.stop()
    records = await read_topic(service_settings.infra, scratch_topic.name, 2)
    assert [r.value for r in records] == [b"before", b"after"]
    assert is_transient(OutOfOrderSequenceNumber())  # the caller of the failed send retries


async def test_a_heal_does_not_wait_for_batches_that_will_never_be_delivered(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    """After a broker restart some batches of the forgotten producer may never be delivered;
    closing it must not wait for them (a heal once waited for good, and every later send of the
    gateway timed out behind it): they fail, and the next send goes out on a new producer id."""
    producer = create_producer(service_settings.infra, client_id="test-healing-stuck")
    await producer.start()
    tp = TopicPartition(scratch_topic.name, 0)
    try:
        await producer.send_and_wait(scratch_topic.name, b"before", partition=0)
        first_id = producer._txn_manager.producer_id
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def close_that_waits_for_it() -> None:
            await never

        producer._message_accumulator.close = close_that_waits_for_it  # type: ignore[method-assign]
        producer._txn_manager.increment_sequence_number(tp, 7)
        with pytest.raises(OutOfOrderSequenceNumber):
            await producer.send_and_wait(scratch_topic.name, b"lost", partition=0)
        async with asyncio.timeout(30):  # the heal gives up on the old producer after 5 s
            after = await producer.send_and_wait(scratch_topic.name, b"after", partition=0)
        assert producer._txn_manager.producer_id != first_id
        assert after.offset == 1
    finally:
        never.cancel()
        await producer.stop()
    records = await read_topic(service_settings.infra, scratch_topic.name, 2)
    assert [r.value for r in records] == [b"before", b"after"]
