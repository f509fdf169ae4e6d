"""Envelopes over the real broker: consumer groups, trace context, commits, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from services.common.envelope import Event, decode, wrap
from services.common.errors import InvalidEvent
from services.common.kafka import REASON_HEADER, EventConsumer, Route, create_producer, publish
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter
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
