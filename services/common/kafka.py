"""Kafka producer and consumer set-up, publishing envelopes, and the shared consumer wrapper.

`EventConsumer` is the one place where a record that cannot be processed becomes a dead-letter
event with its reason; it commits offsets only after a batch is handled (at-least-once), so a
killed consumer replays rather than loses, and handlers stay idempotent by event id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common.envelope import Event, decode, encode, wrap
from services.common.errors import InvalidEvent
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.settings import InfraSettings, ServiceSettings
from services.common.telemetry import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_PUBLISHED,
    HANDLE_SECONDS,
    extract_kafka_context,
    inject_kafka_headers,
)
from services.common.topics import dead_letter_topic

log = logging.getLogger(__name__)
tracer = trace.get_tracer("alama.kafka")

REASON_HEADER = "alama-dead-letter-reason"


def create_producer(infra: InfraSettings, *, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for the in-sync replicas: no lost or doubled writes."""
    options: dict[str, Any] = {
        "bootstrap_servers": infra.kafka_bootstrap,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 30_000,
    }
    return AIOKafkaProducer(**(options | overrides))


def create_consumer(
    infra: InfraSettings, *topics: str, group_id: str, client_id: str, **overrides: Any
) -> AIOKafkaConsumer:
    """A group consumer with manual commits, starting from the earliest offset when new."""
    options: dict[str, Any] = {
        "bootstrap_servers": infra.kafka_bootstrap,
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    envelope: EventEnvelope,
    *,
    headers: list[tuple[str, bytes]] | None = None,
) -> asyncio.Future[RecordMetadata]:
    """Queue one envelope with the current trace context; await the result for delivery."""
    carrier = inject_kafka_headers(headers)
    carrier.append(("alama-payload-type", envelope.payload_type.encode()))
    future = await producer.send(
        topic, encode(envelope), key=envelope.subject.encode() or None, headers=carrier
    )
    EVENTS_PUBLISHED.labels(envelope.producer, topic).inc()
    return future


async def publish_traced(
    producer: AIOKafkaProducer, topic: str, envelope: EventEnvelope
) -> asyncio.Future[RecordMetadata]:
    """`publish` under its own PRODUCER span, a child of the current one (a service emitting an
    event as part of its work, so the trace shows the hop); await the result for delivery."""
    with tracer.start_as_current_span(
        f"{topic} publish",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.message.id": envelope.event_id,
        },
    ):
        return await publish(producer, topic, envelope)


def dead_letter_envelope(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | None,
    reason: str,
    detail: str,
    group: str,
    producer: str,
) -> EventEnvelope:
    """The envelope a dead-letter topic holds: the original record and why it failed."""
    letter = DeadLetter(
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        source_key=key or b"",
        source_value=value or b"",
        reason=reason,
        detail=detail,
        consumer_group=group,
        source_headers={k: v.decode(errors="replace") for k, v in headers or ()},
    )
    letter.failed_at.FromDatetime(datetime.now(UTC))
    return wrap(letter, producer=producer, subject=(key or b"").decode(errors="replace"))


Handler = Callable[[Event[Any], ConsumerRecord], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """What a topic may carry and who handles it."""

    payload_types: tuple[type[Message], ...]
    handler: Handler


class EventConsumer:
    """Consume envelopes from a set of topics, dead-letter what is invalid, commit after work."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        group_id: str,
        routes: Mapping[str, Route],
        consumer_options: Mapping[str, Any] | None = None,
        on_batch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`on_batch` runs after each polled batch is handled and before its offsets are
        committed: the place to flush work that handlers only buffered (micro-batching)."""
        self.on_batch = on_batch
        self.service = settings.service_name
        self.group_id = group_id
        self.routes = dict(routes)
        self.consumer = create_consumer(
            settings.infra,
            *self.routes,
            group_id=group_id,
            client_id=f"{self.service}-consumer",
            **dict(consumer_options or {}),
        )
        self.producer = create_producer(settings.infra, client_id=f"{self.service}-dead-letter")
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self.producer.start()
        try:
            await self.consumer.start()
        except BaseException:
            await self.producer.stop()  # leave nothing half-open when the broker is away
            raise

    async def stop(self) -> None:
        """Finish the batch in hand (run() commits it), then leave the group."""
        self._stopping.set()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        """Poll, handle, commit until stop(); an unexpected handler error escapes uncommitted."""
        try:
            while not self._stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=200)
                if not batches:
                    continue
                for records in batches.values():
                    for record in records:
                        await self.handle(record)
                if self.on_batch is not None:
                    await self.on_batch()
                await self.consumer.commit()
                self._export_lag(batches)
        finally:
            await self.close()

    def _export_lag(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        """Lag as of the batch just committed: the partition's end minus the next offset."""
        for tp, records in batches.items():
            end = self.consumer.highwater(tp)
            if end is not None and records:
                CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                    max(0, end - records[-1].offset - 1)
                )

    async def handle(self, record: ConsumerRecord) -> None:
        route = self.routes[record.topic]
        started = time.perf_counter()
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=extract_kafka_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
                "messaging.consumer.group.name": self.group_id,
            },
        ):
            try:
                event = decode(record.value, route.payload_types)
                await route.handler(event, record)
            except InvalidEvent as exc:
                await self.dead_letter(record, exc.reason, exc.detail)
                EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
                return
            finally:
                HANDLE_SECONDS.labels(self.service, record.topic).observe(
                    time.perf_counter() - started
                )
        EVENTS_CONSUMED.labels(self.service, record.topic, "processed").inc()

    async def dead_letter(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        log.warning(
            "dead-lettering record",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason},
        )
        envelope = dead_letter_envelope(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            reason=reason,
            detail=detail,
            group=self.group_id,
            producer=self.service,
        )
        delivery = await publish(
            self.producer,
            dead_letter_topic(record.topic),
            envelope,
            headers=[(REASON_HEADER, reason.encode())],
        )
        await delivery
