"""The Faust app factory and the Faust side of the shared consumer layer (feature_store, drift).

Record values stay raw bytes: agents hand each record to `StreamConsumer.process`, which runs the
same `services.common.kafka.RecordProcessor` as the aiokafka `EventConsumer`: the same `decode`,
the same CONSUMER span, the same retries (outages until they pass, poison a few times), the same
dead letters. It also samples the group's lag with the shared `services.common.lag` probe and
keeps a `Heartbeat` per agent for the `/livez` probe (`services.common.liveness`), so a stalled
agent is noticed even though the metrics thread still answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import faust
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import EventT
from faust.types.auth import CredentialsT
from google.protobuf.message import Message
from prometheus_client import Counter

from services.common.envelope import Event, encode
from services.common.kafka import (
    PRODUCER_BATCH_BYTES,
    DeadLetterSend,
    Processed,
    RecordProcessor,
)
from services.common.kafka_security import ssl_context
from services.common.lag import GroupLagProbe
from services.common.liveness import Heartbeat, Liveness
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.retries import RetryPolicy
from services.common.settings import InfraSettings, ServiceSettings
from services.common.telemetry import EVENTS_PUBLISHED, inject_kafka_headers
from services.common.topics import CleanupPolicy, TopicChange, TopicSpec, ensure_topics

log = logging.getLogger(__name__)

T = TypeVar("T")
Headers = list[tuple[str, bytes]]
#: lag samples in a row without a change, nothing in flight, before a partition is read again
STUCK_SAMPLES = 3
#: the same, with the same records in flight all along (an abandoned one, or a long outage)
#: while an agent of the topic has work in hand; with no agent busy `STUCK_SAMPLES` suffice
STUCK_IN_FLIGHT_SAMPLES = 12
FETCH_RESTARTS = Counter(
    "alama_faust_partition_rereads_total",
    "source partitions read again from their committed offset after their lag stopped moving"
    " with no record in flight",
    ["service", "topic"],
)


def _faust_data() -> Path:
    """The folder the apps' data folders go in; Faust makes only the last level itself."""
    folder = Path(os.environ.get("ALAMA_RUN_DIR") or ".run") / "faust"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _BatchingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, its fetches shaped like the aiokafka consumers' (see
    `FaustApp`): Faust builds its aiokafka consumer with a 1-byte minimum, so the broker
    answered every record (or two) alone, each answer hopping between Faust's threads."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        fetch = getattr(self.app, "fetch_options", None)
        if fetch is None:
            return consumer
        min_bytes, max_wait_ms = fetch
        # aiokafka keeps them here until start() hands them to its fetcher (the pinned
        # version's attributes: `tests/unit/common/test_faust_app.py` fails if they move)
        if not hasattr(consumer, "_fetch_min_bytes") or not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("aiokafka's consumer no longer keeps its fetch options")
        consumer._fetch_min_bytes = min_bytes
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer


class _BatchingConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _BatchingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _BatchingTransport(faust_aiokafka.Transport):
    Consumer = _BatchingConsumer


class FaustApp(faust.App):
    """A Faust app whose consumer fetches as the service's settings say
    (`consumer_fetch_min_bytes`, `consumer_fetch_max_wait_ms`): the broker holds a fetch until
    that much has arrived or that long has passed, so a stream off the synchronous path takes
    its records in batches, like the aiokafka consumers (`kafka.EventConsumer`)."""

    fetch_options: tuple[int, int] | None = None

    def _new_transport(self) -> Any:
        return _BatchingTransport(self.conf.broker_consumer, self)


def create_faust_app(settings: ServiceSettings, *, app_id: str, **overrides: Any) -> FaustApp:
    """The app authenticates like every aiokafka client (`faust_credentials`), fetches as the
    settings say (`FaustApp`) and creates its changelog and repartition topics with the
    configured replication factor; their ``min.insync.replicas`` is the broker's default (set
    it to 2 on a cluster)."""
    infra = settings.infra
    options: dict[str, Any] = {
        "broker": f"kafka://{infra.kafka_bootstrap}",
        "broker_credentials": faust_credentials(infra),
        "store": "memory://",
        "value_serializer": "raw",
        "key_serializer": "raw",
        "topic_partitions": 6,
        "topic_replication_factor": infra.kafka_replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_every": 500,
        "broker_commit_interval": 1.0,
        "web_enabled": False,
        "producer_acks": -1,
        # as every aiokafka producer (kafka.create_producer): a changelog or alert batch is not
        # cut at 16 KiB into round trips of its own
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
        # as the aiokafka consumers (kafka.create_consumer): a crashed worker's partitions go to
        # the others (or its restart) after 10 s, not Faust's default minute (the chaos battery
        # measured 45 s for a killed worker's replacement to start consuming)
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        # the tables live in memory, but Faust still makes its data folder: with the instance's
        # other data (.run/ or ALAMA_RUN_DIR), not one folder per consumer group in the cwd
        "datadir": str(_faust_data() / "{conf.name}"),
    }
    app = FaustApp(app_id, **(options | overrides))
    app.fetch_options = (settings.consumer_fetch_min_bytes, settings.consumer_fetch_max_wait_ms)
    return app


#: a compacted changelog keeps each key's latest value whatever its retention; this only fills the
#: spec (Kafka applies ``retention.ms`` to the delete policy alone)
CHANGELOG_RETENTION_DAYS = 3650


#: Kafka compacts only closed segments, and a segment closes at 1 GiB or after 7 days by
#: default: a table's changelog then held every version of every state written since the last
#: roll, and a restarted worker replayed them all before it processed anything (390,000 records,
#: 4.5 minutes, for 30,000 members' mobile-money states on the dev instance). Small, short
#: segments and a low dirty ratio let the cleaner keep the log near one record per key.
CHANGELOG_COMPACTION: tuple[tuple[str, str], ...] = (
    ("segment.bytes", str(16 * 1024 * 1024)),
    ("segment.ms", str(10 * 60 * 1000)),
    ("min.cleanable.dirty.ratio", "0.1"),
)


def table_topics(app: faust.App) -> list[TopicSpec]:
    """The changelog topic of every table the app declares, as the broker should hold it."""
    return [
        TopicSpec(
            name=table.changelog_topic.get_topic_name(),
            partitions=table.partitions or app.conf.topic_partitions,
            retention_days=CHANGELOG_RETENTION_DAYS,
            cleanup_policy=CleanupPolicy.COMPACT,
            consumed=False,
            description=f"changelog of the {table.name} table",
            extra_config=CHANGELOG_COMPACTION,
        )
        for table in app.tables.values()
    ]


async def declare_table_topics(app: faust.App, infra: InfraSettings) -> list[TopicChange]:
    """Create the tables' changelogs before the worker joins its group.

    Faust creates them only after the consumer has joined, so the group's metadata snapshot
    holds a new changelog with 0 partitions until its next refresh (minutes): a write to a
    table keyed by the source partition then fails with ``PartitionsMismatch`` (the first
    erasure a fresh worker got was dead-lettered so). Created first, every snapshot is right.
    """
    return await ensure_topics(infra, table_topics(app))


def worker_ready(app: faust.App) -> bool:
    """Whether the worker takes events: started, its tables recovered from their changelogs,
    and no rebalance (which recovers them again) under way. Until then `/readyz` says 503,
    though the metrics thread answered from the start: a restarted feature store replays its
    changelogs for tens of seconds before it processes anything."""
    tables = getattr(app, "tables", None)
    recovery = getattr(tables, "recovery", None)
    completed = getattr(recovery, "completed", None)
    return bool(
        completed is not None and completed.is_set() and not getattr(app, "rebalancing", False)
    )


def faust_credentials(infra: InfraSettings) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for the same settings; None for PLAINTEXT."""
    context = ssl_context(infra)
    if infra.kafka_security_protocol.startswith("SASL_"):
        assert infra.kafka_password is not None
        return SASLCredentials(
            username=infra.kafka_username,
            password=infra.kafka_password.get_secret_value(),
            ssl_context=context,
            mechanism=infra.kafka_sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


@dataclass(frozen=True)
class FaustRecord:
    """A Faust event as the consumer layer sees a record (`kafka.SourceRecord`)."""

    topic: str
    value: bytes | None
    headers: Headers
    partition: int = 0
    offset: int = 0
    key: bytes | None = None

    @classmethod
    def of(cls, event: EventT[bytes], topic: str | None = None) -> FaustRecord:
        """`topic` names the agent's source topic (Faust's test contexts deliver messages
        through a channel without one); without it the message's own topic is used."""
        message = event.message
        raw = event.headers
        items: Iterable[tuple[str, bytes]] = (
            raw.items() if isinstance(raw, Mapping) else raw or ()  # type: ignore[assignment]
        )
        return cls(
            topic=topic or str(message.topic),
            value=event.value,
            headers=[(k, v) for k, v in items if v is not None],
            partition=int(message.partition or 0),
            offset=int(message.offset or 0),
            key=message.key if isinstance(message.key, bytes) else None,
        )


def faust_sender(app: faust.App, service: str, *, timeout_s: float) -> DeadLetterSend:
    """Send an envelope through the app's producer with the current trace context, bounded: a
    missing topic would otherwise block the agent (and shutdown) forever."""

    async def send(topic: str, envelope: EventEnvelope, headers: Headers) -> None:
        carrier = inject_kafka_headers(
            [*headers, ("alama-payload-type", envelope.payload_type.encode())]
        )
        async with asyncio.timeout(timeout_s):
            await app.topic(topic).send(
                key=envelope.subject.encode() or None, value=encode(envelope), headers=carrier
            )
        EVENTS_PUBLISHED.labels(service, topic).inc()

    return send


class StreamConsumer:
    """The shared consumer layer for one Faust app: a `RecordProcessor` and a heartbeat per
    agent, the group's lag sampled on a timer."""

    def __init__(
        self,
        app: faust.App,
        *,
        service: str,
        group_id: str,
        topics: Sequence[str],
        send: DeadLetterSend,
        infra: InfraSettings,
        liveness: Liveness,
        lag_every_s: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.group_id = group_id
        self.topics = list(topics)
        self.send = send
        self.retry = retry or RetryPolicy()
        self.liveness = liveness
        self.lag = GroupLagProbe(infra, group_id, self.topics, service=service)
        self._processors: dict[str, RecordProcessor] = {}
        self._agent_topics: dict[str, set[str]] = {}
        self._last_lag: dict[tuple[str, int], int] = {}
        self._stuck_samples: dict[tuple[str, int], int] = {}
        #: of those samples, how many in a row found no agent of the topic with work in hand
        self._idle_samples: dict[tuple[str, int], int] = {}
        self._last_flight: dict[tuple[str, int], tuple[int, ...]] = {}

        @app.timer(lag_every_s, name=f"{service}.consumer_lag")
        async def consumer_lag() -> None:
            try:
                await self.sample_lag()
            except Exception:
                log.exception("sampling consumer lag failed")

        @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types a sync receiver
        async def close_lag(_app: Any, *_args: Any, signal: Any, **_kwargs: Any) -> None:
            await self.lag.close()

    def agent(self, name: str, topics: Iterable[str]) -> Heartbeat:
        """Register an agent (its name and source topics); its heartbeat."""
        self._agent_topics[name] = set(topics)
        heartbeat = self.liveness.heartbeat(name)
        self._processors[name] = RecordProcessor(
            service=self.service,
            group_id=self.group_id,
            send=self.send,
            retry=self.retry,
            heartbeat=heartbeat,
        )
        return heartbeat

    def heartbeat(self, name: str) -> Heartbeat:
        return self.liveness.heartbeat(name)

    async def process(
        self,
        agent: str,
        record: FaustRecord,
        payload_types: tuple[type[Message], ...] | type[Message],
        handler: Callable[[Event[Any]], Awaitable[T]],
    ) -> Processed[T]:
        """Decode and handle one record as every Alama consumer does (see `RecordProcessor`)."""
        return await self._processors[agent].process(record, payload_types, handler)

    async def dead_letter(self, agent: str, record: FaustRecord, reason: str, detail: str) -> None:
        await self._processors[agent].dead_letter(record, reason, detail)

    async def sample_lag(self) -> None:
        """Export the group's lag and tell each agent how many records wait on the partitions
        this worker holds (none while the worker rebalances or recovers its tables: the agents
        are paused by Faust then, not stalled)."""
        lag = await self.lag.sample()
        held = self._assigned()
        pausing = bool(getattr(self.app, "rebalancing", False)) or bool(
            getattr(getattr(self.app.tables, "recovery", None), "in_recovery", False)
        )
        for name, topics in self._agent_topics.items():
            mine = [(tp.topic, tp.partition) for tp in held if tp.topic in topics]
            self.liveness.heartbeat(name).set_waiting(0 if pausing else lag.on(mine))
        if not pausing:
            await self._reread_stuck(lag.by_partition)

    async def _reread_stuck(self, by_partition: Mapping[Any, int]) -> None:
        """Re-read from its committed offset a source partition whose lag has stood still
        while nothing about it moved: `STUCK_SAMPLES` samples with no record of it in flight,
        or `STUCK_IN_FLIGHT_SAMPLES` with the same records in flight all along while an agent
        of the topic had work in hand (no agent busy for `STUCK_SAMPLES` samples: nothing is
        working on the records in flight, so the shorter bound).

        Faust commits a partition only up to its first offset not yet acknowledged, and its
        fetch loop drops every record below the partition's read offset. After a rebalance
        the loop can set that read offset from a record of the old generation (one it was
        handing to a full stream buffer) after the new generation's seek reset it: the records
        between the committed offset and that stale one are then dropped, never acknowledged,
        and the partition's commit never moves again while everything after it is processed
        (the chaos battery's kill -9 of the feature store met this: lag 3,731, 5,065, 1,268 and
        775 in four runs, nothing logged). The abandoned record itself can stay in Faust's
        unacknowledged set (a weak set) for minutes, looking in flight: hence the second, longer
        bound. Likewise a partition Faust's flow control left out of the fetch. Seeking back to
        the committed offset redelivers those records (the handlers are idempotent, so the rest
        come back as duplicates) and puts the partition back in the fetch. A handler waiting out
        an outage longer than the longer bound gets its records redelivered too: duplicates,
        never a loss.
        """
        consumer = self.app.consumer
        active = getattr(consumer, "_active_partitions", None)
        if active is None:
            return
        paused: set[Any] = getattr(consumer, "_paused_partitions", set())
        assigned = {tuple(t): t for t in consumer.assignment()}
        for tp, waiting in by_partition.items():
            key = (tp.topic, tp.partition)
            faust_tp = assigned.get(key)
            flight = _in_flight(consumer, faust_tp) if faust_tp is not None else ()
            if (
                waiting <= 0
                or self._last_lag.get(key) != waiting
                or self._last_flight.get(key) != flight
            ):
                self._stuck_samples[key] = self._idle_samples[key] = 0
            else:
                self._stuck_samples[key] = self._stuck_samples.get(key, 0) + 1
                idle = not self._agents_busy(tp.topic)
                self._idle_samples[key] = self._idle_samples.get(key, 0) + 1 if idle else 0
            self._last_lag[key], self._last_flight[key] = waiting, flight
            # a record abandoned in Faust's unacknowledged set looks in flight for minutes; one
            # that no agent has had in hand for the short bound is not being worked on (the
            # chaos battery's killed feature store waited the long bound, 60 s, for that)
            working = bool(flight) and self._idle_samples.get(key, 0) < STUCK_SAMPLES
            needed = STUCK_IN_FLIGHT_SAMPLES if working else STUCK_SAMPLES
            if self._stuck_samples[key] < needed or faust_tp is None or faust_tp in paused:
                continue
            state = _faust_partition_state(consumer, faust_tp)
            committed = getattr(consumer, "_committed_offset", {}).get(faust_tp)
            self._stuck_samples[key] = self._idle_samples[key] = 0
            getattr(consumer, "_buffered_partitions", set()).discard(faust_tp)
            active.add(faust_tp)
            if committed is not None:
                await consumer.seek(faust_tp, committed)
            FETCH_RESTARTS.labels(self.service, tp.topic).inc()
            # the state in the message itself: Faust's log format drops `extra`
            log.warning(
                "partition %s[%s] read again from its committed offset %s: lag %s stood still"
                " for %s samples (%s records in flight); %s",
                tp.topic,
                tp.partition,
                committed,
                waiting,
                needed,
                len(flight),
                state,
                extra={"lag": waiting, **state},
            )

    def _agents_busy(self, topic: str) -> bool:
        """Whether an agent reading `topic` has a record or a batch in hand now."""
        return any(
            self.liveness.heartbeat(name).busy_since is not None
            for name, topics in self._agent_topics.items()
            if topic in topics
        )

    def _assigned(self) -> list[Any]:
        try:
            return list(self.app.assignor.assigned_actives())
        except Exception:  # not started (test contexts)
            return []


def _in_flight(consumer: Any, tp: Any) -> tuple[int, ...]:
    """The offsets of `tp`'s records handed to a stream and not yet acknowledged."""
    return tuple(sorted(m.offset for m in list(consumer._unacked_messages) if m.tp == tp))


def _faust_partition_state(consumer: Any, tp: Any) -> dict[str, Any]:
    """Faust's and aiokafka's bookkeeping of one partition, for the stuck-partition warning."""
    state: dict[str, Any] = {"topic": tp.topic, "partition": tp.partition}
    try:
        acked = list(consumer._acked.get(tp, ()))
        unacked = [m.offset for m in list(consumer._unacked_messages) if m.tp == tp]
        state |= {
            "read_offset": consumer._read_offset.get(tp),
            "committed_offset": consumer._committed_offset.get(tp),
            "acked": len(acked),
            "acked_min": min(acked, default=None),
            "acked_max": max(acked, default=None),
            "gaps": [(i.begin, i.end) for i in sorted(consumer._gap.get(tp, ()))][:5],
            "unacked": len(unacked),
            "unacked_min": min(unacked, default=None),
            "paused": tp in consumer._paused_partitions,
            "buffered": tp in getattr(consumer, "_buffered_partitions", ()),
            "flow_active": getattr(consumer, "flow_active", None),
        }
        kafka = consumer._thread._consumer
        tps = kafka._subscription.subscription.assignment.state_value(tp)
        state |= {
            "kafka_position": tps.position if tps.has_valid_position else None,
            "kafka_paused": tps.paused,
            "kafka_awaiting_reset": tps.awaiting_reset,
        }
    except Exception as exc:  # diagnostics must never break the sampling
        state["state_error"] = repr(exc)
    return state
