"""The feature_store stream processor: Faust agents that keep member activity and push features.

Two agents, one per source topic (mobile-money transactions, repayments), take batches with
`stream.take_events` and hand each record to the shared consumer layer
(`services.common.faust_app.StreamConsumer`: decode, consumer span, retries, dead letters with
their reason, heartbeats for the liveness probe, group lag), which adds its row to the member's
history in a changelog-backed Faust table (idempotent per transaction / repayment id); then each
touched member's features are recomputed with the shared definition and one DataFrame per
feature source is pushed to Feast.

A member whose push failed keeps ``pending`` in its state and is pushed again by a timer, so a
Feast outage delays features but loses nothing, and the agents never stop on it. Offsets are
committed after the batch is in the state tables (whose changelog Faust flushes first).

Every row pushed online is written to the offline store too (`offline.OfflineWriter`), so
training builds its sets from streamed rows as well. The two writes go to independent stores, so
they run side by side (a batch waits for the slower, not for both in turn) and neither undoes the
other: a row pushed online that the offline store could not take waits in the member's state
(``History.offline``, in the changelog like the rest) and the same timer writes it again; a row
the offline store took while the online push failed is computed again for the retried push and
written again, which the offline writer counts as already written. While the offline store keeps
failing, batches leave their rows owed without trying, so a slow or absent PostgreSQL costs the
online path at most one timed-out write per retry round.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import faust
import pandas as pd
from faust.types import AgentT, StreamT, TableT
from google.protobuf.message import Message
from opentelemetry import trace

from services.common.envelope import Event
from services.common.faust_app import (
    FaustRecord,
    StreamConsumer,
    create_faust_app,
    faust_sender,
)
from services.common.kafka import DeadLetterSend
from services.common.lag import GroupLagProbe
from services.common.liveness import Liveness
from services.common.member_exports import ExportAnswer
from services.common.member_rights import member_pseudonym
from services.common.members import split_member_key
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureRequested,
    MemberExportRequested,
)
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.feature_store.activity import (
    History,
    Outcome,
    RepaymentHistory,
    WalletHistory,
)
from services.feature_store.erasures import ERASED, FeastEraser, MemberErasures
from services.feature_store.events import recorded_repayment, wallet_transaction
from services.feature_store.feature_rows import (
    mobile_money_rows,
    owed_frame,
    owed_rows,
    repayment_rows,
)
from services.feature_store.member_data import FeastMemberData, WorkerTablesMemberData
from services.feature_store.metrics import (
    DUPLICATES,
    OFFLINE_ROWS,
    OFFLINE_ROWS_OWED,
    OFFLINE_WRITE_SECONDS,
    OFFLINE_WRITES,
)
from services.feature_store.offline import OfflineWriter, PostgresOfflineWriter
from services.feature_store.push import FeastPusher, FeaturePusher
from services.feature_store.settings import FeatureStoreSettings, PushTarget

log = logging.getLogger(__name__)
#: an HMAC per event, twice (the erasure check, the span), cost more than applying the event;
#: a member's events come in runs, so the pseudonyms are kept
_pseudonym = functools.lru_cache(maxsize=1 << 16)(member_pseudonym)
tracer = trace.get_tracer("alama.feature_store")

#: sends an envelope (a dead letter) to a topic with extra headers
Publisher = DeadLetterSend
HistoryT = TypeVar("HistoryT", WalletHistory, RepaymentHistory)
#: the flags in a member's state that the retry timer acts on
PENDING, OWED = "pending", "offline"
FLAGS = (PENDING, OWED)


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
    #: the members whose state says ``pending`` / owes offline rows, kept as they are saved, so
    #: the retry timer reads those few states instead of every member's (a scan of tens of
    #: thousands of states every 10 s took a third of the worker's time in a burst); rebuilt
    #: from the table after each rebalance, whose recovery writes states without `save`
    flagged: dict[str, set[str]] = field(default_factory=lambda: {flag: set() for flag in FLAGS})
    #: `app.rebalancing_count` when `flagged` was last rebuilt (None: never)
    flagged_at: int | None = None

    def load(self, member_id: str) -> HistoryT:
        state = self.table.get(member_id)
        return self.history.from_json(state) if state else self.history(member_id=member_id)

    def save(self, history: History[Any]) -> None:
        state = history.to_json()
        self.table[history.member_id] = state
        self._flag(history.member_id, state)

    def _flag(self, member_id: str, state: Mapping[str, Any]) -> None:
        for flag, members in self.flagged.items():
            if state.get(flag):
                members.add(member_id)
            else:
                members.discard(member_id)

    def flagged_histories(self, flag: str, rebalances: int) -> list[HistoryT]:
        """The members whose saved state carries `flag` (``pending`` or ``offline``)."""
        if self.flagged_at != rebalances:
            for members in self.flagged.values():
                members.clear()
            for member_id, state in list(self.table.items()):
                if state:
                    self._flag(member_id, state)
            self.flagged_at = rebalances
        found: list[HistoryT] = []
        for member_id in sorted(self.flagged[flag]):
            state = self.table.get(member_id)
            if state and state.get(flag):
                found.append(self.history.from_json(state))
            else:  # erased, or saved elsewhere without the flag
                self.flagged[flag].discard(member_id)
        return found


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
    consumer: StreamConsumer
    agents: dict[str, AgentT[Any]] = field(default_factory=dict)
    #: members' erasures (services.feature_store.erasures), set by create_feature_store_app
    erasures: MemberErasures | None = None
    #: where pushed rows are also written (None: online only)
    offline: OfflineWriter | None = None
    #: the last offline write failed: batches leave their rows owed until a retry succeeds
    offline_failing: bool = False

    @property
    def streams(self) -> tuple[ActivityStream[Any], ...]:
        return (self.mobile_money, self.repayments)

    def member_ref(self, member_id: str) -> str:
        return _pseudonym(self.settings.member_pseudonym_key.get_secret_value().encode(), member_id)

    @property
    def lag(self) -> GroupLagProbe:
        return self.consumer.lag

    @property
    def liveness(self) -> Liveness:
        return self.consumer.liveness

    async def ingest(
        self, stream: ActivityStream[Any], records: Sequence[FaustRecord]
    ) -> BatchReport:
        """Apply a batch to the members' state, dead-letter what is bad, push who changed."""
        report = BatchReport()
        heartbeat = self.consumer.heartbeat(stream.name)
        heartbeat.began()
        try:
            async with stream.lock:
                touched: dict[str, History[Any]] = {}
                for record in records:
                    outcome = await self._apply(stream, record, touched)
                    report.count(outcome)
                pending = [h for h in touched.values() if h.pending]
                report.pushed = await self._push(stream, pending)
                # one changelog record per member and batch: `_push` saved the pushed ones
                pushed = set(report.pushed)
                for history in touched.values():
                    if history.member_id not in pushed:
                        stream.save(history)  # a failed push stays pending for the retry
        finally:
            heartbeat.finished()
        return report

    async def _apply(
        self, stream: ActivityStream[Any], record: FaustRecord, touched: dict[str, History[Any]]
    ) -> str:
        async def add(event: Event[Any]) -> str:
            row = stream.to_row(event)  # InvalidEvent: dead-lettered with its reason
            if self.erasures is not None and self.erasures.refuses(
                row.member_id, event.occurred_at
            ):
                return ERASED  # an erased member's event from before the erasure
            history = touched.get(row.member_id) or stream.load(row.member_id)
            touched[row.member_id] = history
            outcome = history.add(row)  # idempotent per transaction / repayment id
            span = trace.get_current_span()
            # never the raw id in a span: the keyed pseudonym of the member id, the one every
            # service's spans carry (services.common.member_rights)
            span.set_attribute(
                "alama.member_ref", self.member_ref(split_member_key(row.member_id)[1])
            )
            span.set_attribute("alama.outcome", str(outcome))
            if outcome is Outcome.DUPLICATE:
                DUPLICATES.labels(stream.topic).inc()
            return str(outcome)

        result = await self.consumer.process(stream.name, record, stream.payload_type, add)
        return result.outcome

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
            pushed, written = await asyncio.gather(
                self.pusher.push(stream.push_source, rows),
                self._write_offline(stream, histories, rows, retrying=False),
                return_exceptions=True,
            )
        if isinstance(written, BaseException):
            raise written
        if isinstance(pushed, BaseException):
            if not isinstance(pushed, Exception):
                raise pushed
            log.error(
                "feast push failed; members stay pending",
                exc_info=pushed,
                extra={"push_source": stream.push_source, "members": len(rows)},
            )
            return []  # rows written offline meanwhile are written again with the retry
        owed = owed_rows(rows) if self.offline is not None and not written else {}
        for history in histories:
            history.mark_pushed(as_of[history.member_id])
            if history.member_id in owed:
                history.offline.append(owed[history.member_id])
        for history in histories:
            stream.save(history)
        return [h.member_id for h in histories]

    async def _write_offline(
        self,
        stream: ActivityStream[Any],
        histories: Sequence[History[Any]],
        fresh: pd.DataFrame | None,
        *,
        retrying: bool,
    ) -> bool:
        """Write the members' owed rows and the `fresh` ones to the offline store; True when
        they are all written (the owed ones are then dropped), False when they are not (nothing
        changes: the caller decides what stays owed).

        Runs under the stream's lock, like the push: an erasure (which takes it) never sees a
        row half written, and one that removed the member's state removed its owed rows too.
        A batch does not try while the offline store is failing; the retry timer does.
        """
        if self.offline is None:
            return False
        owing = [h for h in histories if h.offline]
        frames = [owed_frame([row for h in owing for row in h.offline])] if owing else []
        if fresh is not None and not fresh.empty:
            frames.append(fresh)
        if not frames:
            return True
        if self.offline_failing and not retrying:
            return False
        rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.offline_write_timeout_s):
                written = await self.offline.write(stream.push_source, rows)
        except Exception:
            OFFLINE_WRITES.labels(stream.push_source, "failed").inc()
            self.offline_failing = True
            log.exception(
                "offline write failed; the rows stay owed for the retry timer",
                extra={"push_source": stream.push_source, "rows": len(rows)},
            )
            return False
        finally:
            OFFLINE_WRITE_SECONDS.labels(stream.push_source).observe(time.perf_counter() - started)
        self.offline_failing = False
        OFFLINE_WRITES.labels(stream.push_source, "ok").inc()
        OFFLINE_ROWS.labels(stream.push_source, "written").inc(written)
        OFFLINE_ROWS.labels(stream.push_source, "already_written").inc(len(rows) - written)
        for history in owing:
            history.offline = []
        return True

    def _rebalances(self) -> int:
        return int(getattr(self.app, "rebalancing_count", 0))

    def _recovering(self) -> bool:
        """A rebalance (and the tables' recovery) is under way: the retries wait for its end,
        as the agents do (`_tables_recovered`), rather than act on half-recovered tables."""
        return bool(getattr(self.app, "rebalancing", False))

    async def push_pending(self) -> list[str]:
        """Push every member whose last push failed (run by a timer)."""
        pushed: list[str] = []
        if self._recovering():
            return pushed
        for stream in self.streams:
            async with stream.lock:
                pending = stream.flagged_histories(PENDING, self._rebalances())
                size = self.settings.max_batch
                for start in range(0, len(pending), size):
                    pushed += await self._push(stream, pending[start : start + size])
        return pushed

    async def write_owed_offline(self) -> int:
        """Write every member's owed offline rows (run by the retry timer after the pushes);
        returns how many rows were sent. Stops at the first failure: the next round tries
        again, and meanwhile the batches are not held up by more attempts."""
        if self.offline is None or self._recovering():
            return 0
        sent = 0
        for stream in self.streams:
            async with stream.lock:
                owing = stream.flagged_histories(OWED, self._rebalances())
                size = self.settings.max_batch
                for start in range(0, len(owing), size):
                    chunk = owing[start : start + size]
                    rows = sum(len(h.offline) for h in chunk)
                    if not await self._write_offline(stream, chunk, None, retrying=True):
                        break
                    sent += rows
                    for history in chunk:
                        stream.save(history)
                OFFLINE_ROWS_OWED.labels(stream.push_source).set(
                    sum(len(h.offline) for h in stream.flagged_histories(OWED, self._rebalances()))
                )
        return sent


def create_feature_store_app(
    settings: FeatureStoreSettings,
    pusher: FeaturePusher | None = None,
    publisher: Publisher | None = None,
    feast_eraser: FeastEraser | None = None,
    offline: OfflineWriter | None = None,
) -> FeatureStoreService:
    """Wire the agents, state tables and timers; open Feast unless a pusher is given (then
    erasures reach Feast only through `feast_eraser`, and rows reach the offline store only
    through `offline`)."""
    app = create_faust_app(settings, app_id=settings.consumer_group)
    publish = publisher or faust_sender(
        app, settings.service_name, timeout_s=settings.publish_timeout_s
    )

    def table(name: str) -> TableT[str, Any]:
        # keyed like the source topics (the tenant-scoped member key) and partitioned by the
        # producer's partitioner: a member's state lives in the partition its events come from
        return app.Table(
            name,
            default=None,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
            partitions=settings.topic_partitions,
            use_partitioner=True,
        )

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
    opens_feast = pusher is None
    if pusher is None:
        feast = FeastPusher.open(settings)
        pusher = feast
        if offline is None and settings.push_target is PushTarget.ONLINE_AND_OFFLINE:
            offline = PostgresOfflineWriter(settings.infra, feast.store)
    service = FeatureStoreService(
        settings=settings,
        app=app,
        pusher=pusher,
        offline=offline,
        publish=publish,
        mobile_money=mobile_money,
        repayments=repayments,
        consumer=StreamConsumer(
            app,
            service=settings.service_name,
            group_id=settings.consumer_group,
            topics=[mobile_money.topic, repayments.topic],
            send=publish,
            infra=settings.infra,
            liveness=Liveness(settings.liveness_stall_s),
            lag_every_s=settings.lag_every_s,
            retry=settings.retry_policy,
        ),
    )
    if feast_eraser is None and opens_feast:
        feast_eraser = FeastMemberData(settings.infra).erase
    service.erasures = MemberErasures(
        service,
        # keyed by the member's pseudonym; written in the partition of the vouched request,
        # which is the member's (co-partitioned with the source topics)
        app.Table(
            "erased_members",
            default=None,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
            partitions=settings.topic_partitions,
        ),
        feast_eraser,
        settings.erasures_completed_topic,
    )
    # a member's export: Feast online and offline rows and this worker's tables, under the
    # tenant-scoped key (the request is keyed by it, so this worker holds the member's tables)
    exports = ExportAnswer(
        [
            FeastMemberData(settings.infra),
            WorkerTablesMemberData([s.table for s in service.streams]),
        ]
        if opens_feast
        else [WorkerTablesMemberData([s.table for s in service.streams])],
        lambda topic, envelope: publish(topic, envelope, []),
        settings.export_parts_topic,
        settings.service_name,
    )
    service.consumer.agent("exports", [settings.exports_topic])
    service.agents["exports"] = app.agent(
        app.topic(settings.exports_topic), name="feature_store.exports"
    )(
        _record_agent(
            service, "exports", settings.exports_topic, MemberExportRequested, exports.handle
        )
    )
    service.consumer.agent("erasures", [settings.erasures_topic])
    service.agents["erasures"] = app.agent(
        app.topic(settings.erasures_topic), name="feature_store.erasures"
    )(
        _record_agent(
            service,
            "erasures",
            settings.erasures_topic,
            MemberErasureRequested,
            service.erasures.handle,
        )
    )
    for stream in service.streams:
        service.consumer.agent(stream.name, [stream.topic])
        service.agents[stream.name] = app.agent(
            app.topic(stream.topic), name=f"feature_store.{stream.name}"
        )(_batch_agent(service, stream))

    @app.timer(settings.retry_pending_every_s, name="feature_store.retry_pending")
    async def retry_pending() -> None:
        try:
            await service.push_pending()
        except Exception:
            log.exception("retrying pending pushes failed")
        try:
            await service.write_owed_offline()
        except Exception:
            log.exception("retrying owed offline writes failed")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types a sync receiver
    async def close_clients(_app: Any, *_args: Any, signal: Any, **_kwargs: Any) -> None:
        service.pusher.close()
        if service.offline is not None:
            await service.offline.close()

    return service


#: how often a worker waiting for its tables' recovery says so in its log
RECOVERY_NOTE_EVERY_S = 10.0


async def _changelog_metadata(app: faust.App, table: TableT[str, Any]) -> None:
    """Wait until the producer knows the table's changelog partitions.

    Faust picks a changelog partition from the producer's metadata; a changelog topic this worker
    has just created is not in it yet, and the first write to the table would crash the agent.
    """
    from faust.transport.drivers.aiokafka import Producer as KafkaProducer

    if isinstance(app.producer, KafkaProducer) and app.producer.started:  # not in test contexts
        producer = app.producer._ensure_producer()  # Faust exposes no public way
        await producer.partitions_for(table.changelog_topic.get_topic_name())


def _record_agent(
    service: FeatureStoreService,
    name: str,
    topic: str,
    payload_type: type[Message],
    handle: Callable[[Event[Any]], Awaitable[Any]],
) -> Callable[[StreamT[bytes]], AsyncIterator[str]]:
    """An agent that handles one record at a time through the shared consumer layer."""

    async def each(events: StreamT[bytes]) -> AsyncIterator[str]:
        async for event in events.events():
            await _tables_recovered(service.app)  # erasures and exports read the tables
            result = await service.consumer.process(
                name, FaustRecord.of(event, topic), payload_type, handle
            )
            yield str(result.outcome)

    return each


async def _tables_recovered(app: faust.App) -> None:
    """Wait while the tables are being recovered from their changelogs.

    A worker's first assignment has no revocation step, so Faust does not suspend its flow:
    records fetched between the assignment and the pause that precedes recovery reach the
    agents while the tables are still empty. Applied then, an event is saved into an empty
    history that the recovery overwrites with the changelog's, and the event is lost (the
    restart test once lost exactly the first transaction after a restart so). Faust marks the
    whole rebalance, recovery included, with `app.rebalancing`, so the agent waits while it is
    set, for as long as the recovery takes: an event applied before it ends is lost, whereas a
    slow recovery only delays (the stream partitions stay paused through it anyway; a fixed
    bound of the session timeout once ran out on a slow machine). It stops waiting only when
    another rebalance begins: that one's revocation waits for this batch to be acknowledged,
    so waiting on would deadlock the worker. The records held meanwhile are redelivered from
    the committed offset too; the histories ignore them as duplicates.
    """
    if not getattr(app, "rebalancing", False):
        return
    loop = asyncio.get_running_loop()
    began = app.rebalancing_count
    started = loop.time()
    next_note = started + RECOVERY_NOTE_EVERY_S
    while app.rebalancing and app.rebalancing_count == began:  # Faust has no event for it
        await asyncio.sleep(0.05)
        if loop.time() >= next_note:
            next_note += RECOVERY_NOTE_EVERY_S
            log.warning(
                "records held for %.0f s while the tables recover from their changelogs",
                loop.time() - started,
            )
    if app.rebalancing_count != began:
        log.warning(
            "another rebalance began while records waited for the tables' recovery; they are "
            "applied now so that its revocation can complete"
        )


def _batch_agent(
    service: FeatureStoreService, stream: ActivityStream[Any]
) -> Callable[[StreamT[bytes]], AsyncIterator[BatchReport]]:
    settings = service.settings

    async def ingest(events: StreamT[bytes]) -> AsyncIterator[BatchReport]:
        within = settings.batch_max_wait_ms / 1000
        batches = cast(faust.Stream[bytes], events).take_events(settings.max_batch, within)
        await _changelog_metadata(service.app, stream.table)
        async for batch in batches:
            await _tables_recovered(service.app)
            records = [FaustRecord.of(e, stream.topic) for e in batch]
            # take_events acks the batch once this body returns (or is torn down): when the
            # worker stops mid-batch, let the batch finish so the offsets it acks were processed
            work = asyncio.ensure_future(service.ingest(stream, records))
            try:
                report = await asyncio.shield(work)
            except asyncio.CancelledError:
                await asyncio.wait({work}, timeout=settings.shutdown_grace_seconds)
                raise
            yield report

    return ingest
