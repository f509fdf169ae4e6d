"""The feature_store stream processor: Faust agents that keep member activity and push features.

Two agents, one per source topic (mobile-money transactions, repayments), take batches with
`stream.take_events`, decode each envelope (bad records go to the topic's dead-letter twin with
their reason), add the rows to the member's history in a changelog-backed Faust table
(idempotent per transaction / repayment id), then recompute each touched member's features
with the shared definition and push one DataFrame per feature source to Feast.

A member whose push failed keeps ``pending`` in its state and is pushed again by a timer, so a
Feast outage delays features but loses nothing, and the agents never stop on it. Offsets are
committed after the batch is in the state tables (whose changelog Faust flushes first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import faust
import pandas as pd
from faust.types import AgentT, EventT, StreamT, TableT
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common.envelope import Event, decode, encode
from services.common.errors import InvalidEvent
from services.common.faust_app import create_faust_app
from services.common.kafka import REASON_HEADER, dead_letter_envelope
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.telemetry import (
    EVENTS_CONSUMED,
    EVENTS_PUBLISHED,
    HANDLE_SECONDS,
    extract_kafka_context,
    inject_kafka_headers,
)
from services.common.topics import dead_letter_topic
from services.feature_store.activity import (
    History,
    Outcome,
    RepaymentHistory,
    WalletHistory,
)
from services.feature_store.events import recorded_repayment, wallet_transaction
from services.feature_store.feature_rows import mobile_money_rows, repayment_rows
from services.feature_store.lag import ConsumerLag
from services.feature_store.metrics import DUPLICATES
from services.feature_store.push import FeastPusher, FeaturePusher
from services.feature_store.settings import FeatureStoreSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("alama.feature_store")

Headers = list[tuple[str, bytes]]
Publisher = Callable[[str, EventEnvelope, Headers], Awaitable[None]]
HistoryT = TypeVar("HistoryT", WalletHistory, RepaymentHistory)


@dataclass(frozen=True)
class SourceRecord:
    """What the service needs of one Kafka record."""

    value: bytes | None
    headers: Headers
    partition: int = 0
    offset: int = 0
    key: bytes | None = None

    @classmethod
    def of(cls, event: EventT[bytes]) -> SourceRecord:
        message = event.message
        raw = event.headers
        items: Iterable[tuple[str, bytes]] = (
            raw.items() if isinstance(raw, Mapping) else raw or ()  # type: ignore[assignment]
        )
        return cls(
            value=event.value,
            headers=[(k, v) for k, v in items if v is not None],
            partition=int(message.partition or 0),
            offset=int(message.offset or 0),
            key=message.key if isinstance(message.key, bytes) else None,
        )


@dataclass
class ActivityStream(Generic[HistoryT]):
    """One source topic: how its payloads become rows, where they are kept and pushed."""

    name: str
    topic: str
    payload_type: type[Message]
    to_row: Callable[[Event[Any]], Any]
    history: type[HistoryT]
    table: TableT[str, Any]
    push_source: str
    rows: Callable[[Sequence[HistoryT], Mapping[str, int]], pd.DataFrame]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def load(self, member_id: str) -> HistoryT:
        state = self.table.get(member_id)
        return self.history.from_json(state) if state else self.history(member_id=member_id)

    def save(self, history: History[Any]) -> None:
        self.table[history.member_id] = history.to_json()


@dataclass
class BatchReport:
    """What one batch did, by outcome, and the members whose features were pushed."""

    outcomes: dict[str, int] = field(default_factory=dict)
    pushed: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass
class FeatureStoreService:
    """The Faust app, its two agents and state tables; built by `create_feature_store_app`."""

    settings: FeatureStoreSettings
    app: faust.App
    pusher: FeaturePusher
    publish: Publisher
    mobile_money: ActivityStream[WalletHistory]
    repayments: ActivityStream[RepaymentHistory]
    lag: ConsumerLag
    agents: dict[str, AgentT[Any]] = field(default_factory=dict)

    @property
    def streams(self) -> tuple[ActivityStream[Any], ...]:
        return (self.mobile_money, self.repayments)

    async def ingest(
        self, stream: ActivityStream[Any], records: Sequence[SourceRecord]
    ) -> BatchReport:
        """Apply a batch to the members' state, dead-letter what is bad, push who changed."""
        report = BatchReport()
        async with stream.lock:
            touched: dict[str, History[Any]] = {}
            for record in records:
                outcome = await self._apply(stream, record, touched)
                report.count(outcome)
            for history in touched.values():
                stream.save(history)
            report.pushed = await self._push(stream, [h for h in touched.values() if h.pending])
        return report

    async def _apply(
        self, stream: ActivityStream[Any], record: SourceRecord, touched: dict[str, History[Any]]
    ) -> str:
        service, topic = self.settings.service_name, stream.topic
        with (
            tracer.start_as_current_span(
                f"{topic} process",
                context=extract_kafka_context(record.headers),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.kafka.destination.partition": record.partition,
                    "messaging.kafka.message.offset": record.offset,
                    "messaging.consumer.group.name": self.settings.app_id,
                },
            ) as span,
            HANDLE_SECONDS.labels(service, topic).time(),
        ):
            try:
                row = stream.to_row(decode(record.value, stream.payload_type))
            except InvalidEvent as exc:
                span.set_attribute("alama.dead_letter_reason", exc.reason)
                await self._dead_letter(stream.topic, record, exc.reason, exc.detail)
                EVENTS_CONSUMED.labels(service, topic, "dead_lettered").inc()
                return "dead_lettered"
            history = touched.get(row.member_id) or stream.load(row.member_id)
            touched[row.member_id] = history
            outcome = history.add(row)
            span.set_attribute("alama.member_id", row.member_id)
            span.set_attribute("alama.outcome", str(outcome))
        if outcome is Outcome.DUPLICATE:
            DUPLICATES.labels(topic).inc()
        EVENTS_CONSUMED.labels(service, topic, str(outcome)).inc()
        return str(outcome)

    async def _push(self, stream: ActivityStream[Any], histories: list[History[Any]]) -> list[str]:
        """Recompute and push the members' rows; on failure they stay pending for a retry.

        ``as_of`` is each member's latest event time (plus a microsecond, see
        `History.next_as_of_ns`), not the wall clock: a replay or a restarted worker computes the
        same rows from the same events, processing delay never shifts the windows, and the row
        is what training computes for a snapshot taken right after that event. Between events
        a member's windows do not slide; the next event (or the next snapshot training takes)
        brings them up to date.
        """
        if not histories:
            return []
        as_of = {h.member_id: h.next_as_of_ns() for h in histories}
        rows = stream.rows(histories, as_of)
        with tracer.start_as_current_span(
            f"feast push {stream.push_source}", attributes={"alama.members": len(rows)}
        ):
            try:
                await self.pusher.push(stream.push_source, rows)
            except Exception:
                log.exception(
                    "feast push failed; members stay pending",
                    extra={"push_source": stream.push_source, "members": len(rows)},
                )
                return []
        for history in histories:
            history.mark_pushed(as_of[history.member_id])
            stream.save(history)
        return [h.member_id for h in histories]

    async def push_pending(self) -> list[str]:
        """Push every member whose last push failed (run by a timer)."""
        pushed: list[str] = []
        for stream in self.streams:
            async with stream.lock:
                pending = [
                    stream.history.from_json(state)
                    for state in list(stream.table.values())
                    if state and state.get("pending")
                ]
                size = self.settings.batch_size
                for start in range(0, len(pending), size):
                    pushed += await self._push(stream, pending[start : start + size])
        return pushed

    async def _dead_letter(
        self, topic: str, record: SourceRecord, reason: str, detail: str
    ) -> None:
        log.warning(
            "dead-lettering record",
            extra={
                "topic": topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
            },
        )
        envelope = dead_letter_envelope(
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            reason=reason,
            detail=detail,
            group=self.settings.app_id,
            producer=self.settings.service_name,
        )
        await self.publish(dead_letter_topic(topic), envelope, [(REASON_HEADER, reason.encode())])


def create_feature_store_app(
    settings: FeatureStoreSettings,
    pusher: FeaturePusher | None = None,
    publisher: Publisher | None = None,
) -> FeatureStoreService:
    """Wire the agents, state tables and timers; open Feast unless a pusher is given."""
    app = create_faust_app(settings, app_id=settings.app_id)

    def table(name: str) -> TableT[str, Any]:
        # keyed like the source topics (raw member id) and partitioned by the producer's
        # partitioner: a member's state lives in the partition its events come from
        return app.Table(
            name,
            default=None,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
            partitions=settings.topic_partitions,
            use_partitioner=True,
        )

    async def send(topic: str, envelope: EventEnvelope, headers: Headers) -> None:
        carrier = inject_kafka_headers(
            [*headers, ("alama-payload-type", envelope.payload_type.encode())]
        )
        # bounded: a missing topic would otherwise block the agent (and shutdown) forever
        async with asyncio.timeout(settings.publish_timeout_s):
            await app.topic(topic).send(
                key=envelope.subject.encode() or None, value=encode(envelope), headers=carrier
            )
        EVENTS_PUBLISHED.labels(settings.service_name, topic).inc()

    mobile_money = ActivityStream(
        name="mobile_money",
        topic=settings.mobile_money_topic,
        payload_type=MobileMoneyTransaction,
        to_row=wallet_transaction,
        history=WalletHistory,
        table=table("mobile_money_activity"),
        push_source=settings.mobile_money_push_source,
        rows=mobile_money_rows,
    )
    repayments = ActivityStream(
        name="repayments",
        topic=settings.repayments_topic,
        payload_type=RepaymentRecorded,
        to_row=recorded_repayment,
        history=RepaymentHistory,
        table=table("repayment_activity"),
        push_source=settings.repayment_push_source,
        rows=repayment_rows,
    )
    service = FeatureStoreService(
        settings=settings,
        app=app,
        pusher=pusher or FeastPusher.open(settings),
        publish=publisher or send,
        mobile_money=mobile_money,
        repayments=repayments,
        lag=ConsumerLag(
            settings.infra.kafka_bootstrap,
            settings.app_id,
            [mobile_money.topic, repayments.topic],
            service=settings.service_name,
        ),
    )
    for stream in service.streams:
        service.agents[stream.name] = app.agent(
            app.topic(stream.topic), name=f"feature_store.{stream.name}"
        )(_batch_agent(service, stream))

    @app.timer(settings.retry_pending_every_s, name="feature_store.retry_pending")
    async def retry_pending() -> None:
        try:
            await service.push_pending()
        except Exception:
            log.exception("retrying pending pushes failed")

    @app.timer(settings.lag_every_s, name="feature_store.consumer_lag")
    async def consumer_lag() -> None:
        try:
            await service.lag.sample()
        except Exception:
            log.exception("sampling consumer lag failed")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types a sync receiver
    async def close_clients(_app: Any, *_args: Any, signal: Any, **_kwargs: Any) -> None:
        await service.lag.close()
        service.pusher.close()

    return service


async def _changelog_metadata(app: faust.App, table: TableT[str, Any]) -> None:
    """Wait until the producer knows the table's changelog partitions.

    Faust picks a changelog partition from the producer's metadata; a changelog topic this worker
    has just created is not in it yet, and the first write to the table would crash the agent.
    """
    from faust.transport.drivers.aiokafka import Producer as KafkaProducer

    if isinstance(app.producer, KafkaProducer) and app.producer.started:  # not in test contexts
        producer = app.producer._ensure_producer()  # Faust exposes no public way
        await producer.partitions_for(table.changelog_topic.get_topic_name())


def _batch_agent(
    service: FeatureStoreService, stream: ActivityStream[Any]
) -> Callable[[StreamT[bytes]], AsyncIterator[BatchReport]]:
    settings = service.settings

    async def ingest(events: StreamT[bytes]) -> AsyncIterator[BatchReport]:
        within = settings.batch_max_wait_ms / 1000
        batches = cast(faust.Stream[bytes], events).take_events(settings.batch_size, within)
        await _changelog_metadata(service.app, stream.table)
        async for batch in batches:
            records = [SourceRecord.of(e) for e in batch]
            # take_events acks the batch once this body returns (or is torn down): when the
            # worker stops mid-batch, let the batch finish so the offsets it acks were processed
            work = asyncio.ensure_future(service.ingest(stream, records))
            try:
                report = await asyncio.shield(work)
            except asyncio.CancelledError:
                await asyncio.wait({work}, timeout=settings.shutdown_grace_s)
                raise
            yield report

    return ingest
