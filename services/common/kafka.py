"""Kafka producer and consumer set-up, publishing envelopes, and the shared consumer layer.

`RecordProcessor` is what happens to one consumed record, for the aiokafka `EventConsumer` and the
Faust agents (`services.common.faust_app`) alike, and the one place where a record becomes a
dead-letter event with its reason: it continues the producer's trace in a CONSUMER span, decodes
the envelope (`envelope.decode` refuses what would stop a consumer later) and runs the handler.
An `InvalidEvent` is dead-lettered at once; an outage (`retries.is_transient`) is retried with
capped exponential backoff for as long as it lasts, never dead-lettered and never committed past;
any other error is the record's own (poison): a few attempts, then a dead letter with reason
`handler_error` and the exception's text. A consumer never stops on a record.

`EventConsumer` commits offsets only after a batch is handled and its `on_batch` flush is done
(at-least-once), so a killed consumer replays rather than loses, and handlers stay idempotent by
event id. A flush that fails on an outage is retried with the batch buffered again; one that
fails otherwise is narrowed down to its poison record(s) by flushing the records one at a time,
and only those are dead-lettered. A commit refused because the group rebalanced is not fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    UnknownProducerId,
)
from aiokafka.structs import RecordMetadata
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from services.common.envelope import Event, decode, encode, wrap
from services.common.errors import InvalidEvent
from services.common.kafka_security import client_options
from services.common.lag import export_lag, partition_lag
from services.common.liveness import Heartbeat
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.retries import RetryPolicy, is_transient
from services.common.settings import InfraSettings, ServiceSettings
from services.common.telemetry import (
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
TRACEPARENT_HEADER = "traceparent"
#: the dead-letter reason of a record whose handler kept failing (not an outage)
HANDLER_ERROR = "handler_error"
#: the longest error text a dead letter carries
MAX_DETAIL_CHARS = 2000


#: what ends aiokafka's sender for good: the broker no longer knows this producer's sequence
PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId)
#: how long a heal waits for the old producer to close before abandoning it
HEAL_STOP_TIMEOUT_S = 5.0


class HealingProducer(AIOKafkaProducer):  # type: ignore[misc]
    """An idempotent producer that outlives the broker forgetting its producer state.

    After an unclean broker restart (or a truncated log) the broker answers this producer's
    batches with OutOfOrderSequenceNumber, and keeps doing so for every later batch: aiokafka
    goes on numbering from where it was. One broker restart left a service unable to publish
    until it was restarted itself (the chaos battery's broker restart found the gateway answering
    503 for minutes). Once a delivery fails that way, the next send first restarts this producer
    under a new producer id, as the Java client does by bumping its epoch. The records that
    failed stay failed: their callers see a transient error (`retries.is_transient`) and send
    them again.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._options = options
        self._state_lost = False
        self._generation = 0
        self._healing = asyncio.Lock()

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[RecordMetadata]:
        while True:
            if self._state_lost:
                await self._heal()
            generation = self._generation
            try:
                future: asyncio.Future[RecordMetadata] = await super().send(*args, **kwargs)
            except ProducerClosed:
                if generation != self._generation:
                    continue  # closed under it by a restart: send on the new producer
                raise
            future.add_done_callback(self._watch)
            return future

    def _watch(self, future: asyncio.Future[RecordMetadata]) -> None:
        if not future.cancelled() and isinstance(future.exception(), PRODUCER_STATE_LOST):
            self._state_lost = True

    async def _heal(self) -> None:
        async with self._healing:
            if not self._state_lost:
                return  # another send restarted it meanwhile
            log.warning("the broker lost this producer's state; restarting it under a new id")
            await self._close_lost()
            healing, generation = self._healing, self._generation
            AIOKafkaProducer.__init__(self, **self._options)
            self._healing, self._generation = healing, generation + 1
            await super().start()  # raises while the broker is away: the next send heals again
            self._state_lost = False

    async def _close_lost(self) -> None:
        """Close the producer whose state the broker lost, without waiting for its batches.

        A plain `stop` flushes first, and batches numbered on the lost sequence (queued, or in
        flight on other partitions) may never be delivered: a heal waited on that flush for
        good, holding every later send behind it (the gateway answered 503 to every webhook for
        11 minutes after a broker restart in the chaos battery). They are failed instead; their
        callers see a transient error and send again on the new producer.
        """
        self._message_accumulator.fail_all(
            KafkaConnectionError("the broker lost this producer's state; send again")
        )
        try:
            await asyncio.wait_for(super().stop(), timeout=HEAL_STOP_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            log.warning("closing the old producer did not finish; abandoning it", exc_info=exc)
            task = self._sender.sender_task if self._sender is not None else None
            if task is not None and not task.done():
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), timeout=HEAL_STOP_TIMEOUT_S)


#: the most one producer batch (one partition's records in one request) holds
PRODUCER_BATCH_BYTES = 512 * 1024


def create_producer(infra: InfraSettings, *, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for the in-sync replicas: no lost or doubled writes,
    and one that recovers when the broker loses its state (`HealingProducer`). Every client
    authenticates as `InfraSettings` says (`kafka_security.client_options`)."""
    options: dict[str, Any] = client_options(infra) | {
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 30_000,
        # aiokafka's default batch is 16 KiB: three decisions (5 KiB each), so a batch of
        # 1,000 became ~300 batches, each its own acknowledged round trip (700 ms in all for a
        # ScoreBatch of 1,000; 80-200 ms with this). Below the broker's 1 MiB message limit.
        "max_batch_size": PRODUCER_BATCH_BYTES,
    }
    return HealingProducer(**(options | overrides))


def create_consumer(
    infra: InfraSettings, *topics: str, group_id: str, client_id: str, **overrides: Any
) -> AIOKafkaConsumer:
    """A group consumer with manual commits, starting from the earliest offset when new."""
    options: dict[str, Any] = client_options(infra) | {
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


def create_admin(infra: InfraSettings, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client that authenticates like the producers and consumers."""
    return AIOKafkaAdminClient(**(client_options(infra) | overrides))


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    envelope: EventEnvelope,
    *,
    headers: list[tuple[str, bytes]] | None = None,
) -> asyncio.Future[RecordMetadata]:
    """Queue one envelope with the current trace context; await the result for delivery."""
    future = await _send(producer, topic, envelope, inject_kafka_headers(headers))
    EVENTS_PUBLISHED.labels(envelope.producer, topic).inc()
    return future


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    envelope: EventEnvelope,
    headers: Sequence[tuple[str, bytes]],
) -> asyncio.Future[RecordMetadata]:
    """The record of one envelope: keyed by its subject, its payload type in a header."""
    carrier = [*headers, ("alama-payload-type", envelope.payload_type.encode())]
    return await producer.send(
        topic, encode(envelope), key=envelope.subject.encode() or None, headers=carrier
    )


async def publish_traced(
    producer: AIOKafkaProducer, topic: str, envelope: EventEnvelope
) -> asyncio.Future[RecordMetadata]:
    """`publish` under its own PRODUCER span, a child of the current one (a service emitting an
    event as part of its work, so the trace shows the hop); await the result for delivery."""
    with _producer_span(topic, {"messaging.message.id": envelope.event_id}):
        return await publish(producer, topic, envelope)


def _producer_span(topic: str, attributes: Mapping[str, str | int]) -> Any:
    """The PRODUCER span of publishing to `topic`, a child of the current one."""
    return tracer.start_as_current_span(
        f"{topic} publish",
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic}
        | dict(attributes),
    )


async def publish_many(
    producer: AIOKafkaProducer,
    topic: str,
    envelopes: Sequence[EventEnvelope],
    *,
    headers: Sequence[Sequence[tuple[str, bytes]]] | None = None,
) -> list[asyncio.Future[RecordMetadata]]:
    """Queue the envelopes of one piece of work (one call's decisions) under one PRODUCER span,
    its trace context computed once for all of them: `publish_traced` per envelope made a
    ScoreBatch of 1,000 open 2,000 spans. `headers`, when given, are each envelope's own (in
    order) beside the trace's. Await each result for its delivery."""
    if not envelopes:
        return []
    own = headers if headers is not None else [()] * len(envelopes)
    if len(own) != len(envelopes):
        raise ValueError(f"{len(own)} header lists for {len(envelopes)} envelopes")
    with _producer_span(topic, {"messaging.batch.message_count": len(envelopes)}):
        trace_headers = inject_kafka_headers()
        deliveries = [
            await _send(producer, topic, e, [*trace_headers, *h])
            for e, h in zip(envelopes, own, strict=True)
        ]
    for producer_name, count in Counter(e.producer for e in envelopes).items():
        EVENTS_PUBLISHED.labels(producer_name, topic).inc(count)
    return deliveries


async def publish_acknowledged(
    producer: AIOKafkaProducer, topic: str, envelope: EventEnvelope, timeout_s: float
) -> RecordMetadata:
    """`publish_traced` and wait for the broker's acknowledgement, at most `timeout_s` (then
    TimeoutError): for a service that must not go on until its event is durable."""
    async with asyncio.timeout(timeout_s):
        return await (await publish_traced(producer, topic, envelope))


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
        reason=_printable(reason),
        detail=_printable(detail)[:MAX_DETAIL_CHARS],
        consumer_group=group,
        source_headers={
            _printable(k): _printable(v.decode(errors="replace")) for k, v in headers or ()
        },
    )
    letter.failed_at.FromDatetime(datetime.now(UTC))
    subject = _printable((key or b"").decode(errors="replace"))
    return wrap(letter, producer=producer, subject=subject)


def _printable(text: str) -> str:
    """A dead letter must itself decode: no NUL in its strings (the raw record keeps them)."""
    return text.replace("\x00", "\ufffd")


def trace_id_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> str:
    """The trace id of a W3C traceparent header (``<version>-<trace id>-<span id>-<flags>``),
    lower-case, or '' when there is none or it is malformed (the all-zero id is invalid)."""
    for key, value in headers or ():
        if key != TRACEPARENT_HEADER or not value:
            continue
        parts = value.decode(errors="replace").strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32:
            trace_id = parts[1].lower()
            if trace_id != "0" * 32 and all(c in "0123456789abcdef" for c in trace_id):
                return trace_id
    return ""


class SourceRecord(Protocol):
    """What the consumer layer needs of a record (aiokafka's `ConsumerRecord` is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


R = TypeVar("R", bound=SourceRecord)
T = TypeVar("T")

#: sends a dead letter: topic, envelope, extra headers; returns once the broker has it
DeadLetterSend = Callable[[str, EventEnvelope, list[tuple[str, bytes]]], Awaitable[None]]


class ConsumerStopped(Exception):
    """The consumer was stopped while waiting out an outage (or retrying poison): the batch in
    hand is left uncommitted, to be replayed by whoever holds the partitions next."""


@dataclass(frozen=True)
class Processed(Generic[T]):
    """What became of one record: the handler's result, or a dead letter."""

    value: T | None = None
    dead_lettered: bool = False
    outcome: str = "processed"


def describe(exc: BaseException) -> str:
    """The text of an exception as a dead letter carries it."""
    return f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]


class RecordProcessor:
    """One record's way through a consumer: span, decode, handler with retries, dead letter."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        send: DeadLetterSend,
        retry: RetryPolicy | None = None,
        stopping: asyncio.Event | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.send = send
        self.retry = retry or RetryPolicy()
        self.stopping = stopping or asyncio.Event()
        self.heartbeat = heartbeat

    def span(self, record: SourceRecord) -> Any:
        """The CONSUMER span of one record, continuing the trace its producer started."""
        return tracer.start_as_current_span(
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
        )

    async def process(
        self,
        record: R,
        payload_types: tuple[type[Message], ...] | type[Message],
        handler: Callable[[Event[Any]], Awaitable[T]],
    ) -> Processed[T]:
        """Decode and handle one record until it is processed or dead-lettered.

        Raises `ConsumerStopped` when the consumer stops during an outage; nothing else."""
        started = time.perf_counter()
        if self.heartbeat is not None:
            self.heartbeat.began()
        with self.span(record) as span:
            try:
                result = await self._handle(record, payload_types, handler, span)
            finally:
                HANDLE_SECONDS.labels(self.service, record.topic).observe(
                    time.perf_counter() - started
                )
        EVENTS_CONSUMED.labels(self.service, record.topic, result.outcome).inc()
        if self.heartbeat is not None:
            self.heartbeat.progressed()
        return result

    async def _handle(
        self,
        record: R,
        payload_types: tuple[type[Message], ...] | type[Message],
        handler: Callable[[Event[Any]], Awaitable[T]],
        span: Span,
    ) -> Processed[T]:
        try:
            event: Event[Any] = decode(record.value, payload_types)
        except InvalidEvent as exc:
            return await self.reject(record, exc.reason, exc.detail, span)
        failures = outages = 0
        while True:
            try:
                value = await handler(event)
            except InvalidEvent as exc:
                return await self.reject(record, exc.reason, exc.detail, span)
            except Exception as exc:
                if is_transient(exc):
                    log.warning(
                        "handler hit an outage; retrying the record",
                        extra=self._where(record) | {"error": describe(exc)},
                    )
                    await self.wait(outages)
                    outages += 1
                    continue
                failures += 1
                if failures >= self.retry.attempts:
                    log.exception("handler kept failing; dead-lettering", extra=self._where(record))
                    return await self.reject(record, HANDLER_ERROR, describe(exc), span)
                log.warning(
                    "handler failed; retrying the record",
                    extra=self._where(record) | {"attempt": failures, "error": describe(exc)},
                )
                await self.wait(failures - 1)
                continue
            label = value if isinstance(value, str) else "processed"
            return Processed(value=value, outcome=label)

    async def reject(
        self, record: SourceRecord, reason: str, detail: str, span: Span | None = None
    ) -> Processed[Any]:
        (span or trace.get_current_span()).set_attribute("alama.dead_letter_reason", reason)
        await self.dead_letter(record, reason, detail)
        return Processed(dead_lettered=True, outcome="dead_lettered")

    async def dead_letter(self, record: SourceRecord, reason: str, detail: str) -> None:
        """Send the record to its topic's dead-letter twin with why (outages retried)."""
        log.warning("dead-lettering record", extra=self._where(record) | {"reason": reason})
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
        headers = [(REASON_HEADER, _printable(reason).encode())]
        await self.retry_outages(
            lambda: self.send(dead_letter_topic(record.topic), envelope, headers), "dead letter"
        )

    async def retry_outages(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Await `call()` until it does not fail on an outage; other errors escape."""
        outages = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning(f"{what} hit an outage; retrying", extra={"error": describe(exc)})
                await self.wait(outages)
                outages += 1

    async def wait(self, attempt: int) -> None:
        """Back off before the next attempt; raise `ConsumerStopped` when stopping meanwhile.
        Waiting out an outage is progress for the liveness probe: a restart would not help."""
        if self.heartbeat is not None:
            self.heartbeat.progressed()
        if self.stopping.is_set():
            raise ConsumerStopped
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=self.retry.delay(attempt))
        except TimeoutError:
            return
        raise ConsumerStopped

    def _where(self, record: SourceRecord) -> dict[str, Any]:
        return {
            "service": self.service,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }


Handler = Callable[[Event[Any], ConsumerRecord], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """What a topic may carry and who handles it. `skip` names the records this group has no
    work for, from their headers alone: they are committed with their batch and counted
    (outcome `skipped`) without being decoded or given a span, which is most of a record's cost
    to a consumer that would only drop it."""

    payload_types: tuple[type[Message], ...]
    handler: Handler
    skip: Callable[[Sequence[tuple[str, bytes]]], bool] | None = None


class EventConsumer:
    """Consume envelopes from a set of topics through the shared `RecordProcessor`; commit after
    the batch is handled and flushed."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        group_id: str,
        routes: Mapping[str, Route],
        consumer_options: Mapping[str, Any] | None = None,
        on_batch: Callable[[], Awaitable[None]] | None = None,
        retry: RetryPolicy | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        """`on_batch` runs after each polled batch is handled and before its offsets are
        committed: the place to flush work that handlers only buffered (micro-batching). It
        must take the buffer at its start (so a failed flush leaves it empty): the consumer
        buffers the records again, all or one at a time, before flushing again."""
        self.on_batch = on_batch
        self.service = settings.service_name
        self.group_id = group_id
        self.routes = dict(routes)
        self.consumer = create_consumer(
            settings.infra,
            *self.routes,
            group_id=group_id,
            client_id=f"{self.service}-consumer",
            **(
                {
                    "fetch_min_bytes": settings.consumer_fetch_min_bytes,
                    "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
                }
                | dict(consumer_options or {})
            ),
        )
        self.producer = create_producer(settings.infra, client_id=f"{self.service}-dead-letter")
        self._stopping = asyncio.Event()
        self.processor = RecordProcessor(
            service=self.service,
            group_id=group_id,
            send=self._send,
            retry=retry,
            stopping=self._stopping,
            heartbeat=heartbeat,
        )

    async def start(self) -> None:
        await self.producer.start()
        try:
            await self.consumer.start()
        except BaseException:
            await self.producer.stop()  # leave nothing half-open when the broker is away
            raise

    async def stop(self) -> None:
        """Finish the batch in hand (run() commits it), then leave the group; a batch held up
        by an outage is left uncommitted instead."""
        self._stopping.set()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        """Poll, handle, flush, commit until stop()."""
        try:
            while not self._stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=200)
                if not batches:
                    continue
                try:
                    await self._handle_batch([r for rs in batches.values() for r in rs])
                    await self._commit()
                except ConsumerStopped:
                    log.info("stopped during an outage; the batch in hand stays uncommitted")
                    break
                self._export_lag(batches)
        finally:
            await self.close()

    async def _handle_batch(self, records: list[ConsumerRecord]) -> None:
        buffered = await self._buffer(records)
        if self.on_batch is not None:
            await self._flush(buffered)

    async def _buffer(self, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """Handle records (handlers of a micro-batching consumer buffer them); the ones not
        dead-lettered are returned."""
        kept = []
        for record in records:
            skip = self.routes[record.topic].skip
            if skip is not None and skip(record.headers):
                EVENTS_CONSUMED.labels(self.service, record.topic, "skipped").inc()
            elif not (await self.handle(record)).dead_lettered:
                kept.append(record)
        return kept

    async def _flush(self, buffered: list[ConsumerRecord]) -> None:
        assert self.on_batch is not None
        outages = 0
        while True:
            try:
                await self.on_batch()
                return
            except Exception as exc:
                if not is_transient(exc):
                    log.warning(
                        "flush failed; flushing the batch one record at a time",
                        extra={"records": len(buffered), "error": describe(exc)},
                    )
                    await self._flush_each(buffered)
                    return
                log.warning(
                    "flush hit an outage; retrying the batch", extra={"error": describe(exc)}
                )
                await self.processor.wait(outages)
                outages += 1
                buffered = await self._buffer(buffered)

    async def _flush_each(self, buffered: list[ConsumerRecord]) -> None:
        """Find the poison: each record buffered and flushed alone, dead-lettered only when its
        own flush keeps failing (outages retried as always)."""
        assert self.on_batch is not None
        for record in buffered:
            failures = outages = 0
            while not (await self.handle(record)).dead_lettered:
                try:
                    await self.on_batch()
                    break
                except InvalidEvent as exc:
                    await self._reject_flushed(record, exc.reason, exc.detail)
                    break
                except Exception as exc:
                    if is_transient(exc):
                        await self.processor.wait(outages)
                        outages += 1
                        continue
                    failures += 1
                    if failures >= self.processor.retry.attempts:
                        log.exception("flushing a record kept failing; dead-lettering")
                        await self._reject_flushed(record, HANDLER_ERROR, describe(exc))
                        break
                    await self.processor.wait(failures - 1)

    async def _reject_flushed(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        with self.processor.span(record):
            await self.processor.reject(record, reason, detail)
        EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()

    async def _commit(self) -> None:
        try:
            await self.processor.retry_outages(self.consumer.commit, "commit")
        except (CommitFailedError, IllegalStateError) as exc:
            # the group rebalanced under this batch: its partitions' new owner replays what was
            # not committed (handlers are idempotent); this consumer goes on with what it holds
            log.warning("commit refused after a rebalance; going on", extra={"error": str(exc)})

    def _export_lag(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        """Lag as of the batch just committed: the partition's end minus the next offset.

        Only for partitions still assigned: a rebalance during the batch (a replica joining)
        may have taken some away, and aiokafka's `highwater` of a partition no longer assigned
        raises instead of answering None; that error ended the consumer, and with it the
        service, whenever a replica joined mid-batch (the bench's 3-replica pipeline ran on one
        replica after the other two stopped so)."""
        assigned = self.consumer.assignment()
        for tp, records in batches.items():
            if tp not in assigned:
                continue  # its new owner reports it
            end = self.consumer.highwater(tp)
            if end is not None and records:
                export_lag(self.service, tp, partition_lag(end, records[-1].offset + 1))

    async def handle(self, record: ConsumerRecord) -> Processed[None]:
        route = self.routes[record.topic]

        async def handle(event: Event[Any]) -> None:
            await route.handler(event, record)

        return await self.processor.process(record, route.payload_types, handle)

    async def dead_letter(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        await self.processor.dead_letter(record, reason, detail)

    async def _send(
        self, topic: str, envelope: EventEnvelope, headers: list[tuple[str, bytes]]
    ) -> None:
        delivery = await publish(self.producer, topic, envelope, headers=headers)
        await delivery
