"""The chain's head, anchored outside PostgreSQL: a compacted Kafka topic and an append-only file.

Whoever owns the tables can delete the newest rows, or rewrite them and the hashes after them;
the MAC stops the rewrite, but nothing inside the database stops a clean suffix delete. So on a
schedule the service seals its head (chain, seq, hash, time) with the MAC key and writes it to a
file and to a compacted topic keyed by chain. `verify` then asks of every anchor in both places:
is it sealed, and does the database still hold that row with that hash? And do the file and the
topic end on the same anchor (so rolling back one of them is seen too)?
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.audit.chain import (
    GENESIS_HASH,
    ChainHead,
    VerifyResult,
    canonical_json,
    canonical_time,
    keyed_mac,
    mac_matches,
)
from services.audit.metrics import ANCHORED_SEQ, ANCHORS_REFUSED, ANCHORS_WRITTEN
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore, ChainTampered
from services.common.kafka import create_producer
from services.common.kafka_security import client_options
from services.common.settings import InfraSettings

log = logging.getLogger(__name__)


class AnchorFormatError(ValueError):
    """A line of the anchor file or a topic record that is not an anchor."""


@dataclass(frozen=True)
class AnchorRecord:
    """A sealed chain head, as written to the file and the topic."""

    chain: str
    seq: int
    row_hash: str
    anchored_at: datetime
    mac: str

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.row_hash)

    def content(self) -> str:
        return canonical_json(
            {
                "chain": self.chain,
                "seq": self.seq,
                "row_hash": self.row_hash,
                "anchored_at": canonical_time(self.anchored_at),
            }
        )

    def to_json(self) -> str:
        return canonical_json(json.loads(self.content()) | {"mac": self.mac})

    @classmethod
    def from_json(cls, text: str | bytes) -> AnchorRecord:
        try:
            doc = json.loads(text)
            return cls(
                chain=str(doc["chain"]),
                seq=int(doc["seq"]),
                row_hash=str(doc["row_hash"]),
                anchored_at=datetime.fromisoformat(doc["anchored_at"]),
                mac=str(doc["mac"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AnchorFormatError(f"not an anchor: {exc}") from exc


def _anchor_mac(key: bytes, record: AnchorRecord) -> str:
    return keyed_mac(key, "alama-audit-anchor", record.content())


def seal_anchor(key: bytes, chain: str, head: ChainHead, anchored_at: datetime) -> AnchorRecord:
    unsealed = AnchorRecord(chain, head.seq, head.row_hash, anchored_at, "")
    return AnchorRecord(chain, head.seq, head.row_hash, anchored_at, _anchor_mac(key, unsealed))


def anchor_sealed(key: bytes, record: AnchorRecord) -> bool:
    return mac_matches(_anchor_mac(key, record), record.mac)


class AnchorFile:
    """One chain's anchors, one JSON line each, appended and synced; never rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: AnchorRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(record.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def newest(self, tail_bytes: int = 64 * 1024) -> AnchorRecord | None:
        """The last anchor in the file, read from its end (the file grows with every head: a
        request should not read all of it). None when there is none; its seal is not checked."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - tail_bytes))
            tail = handle.read().decode("utf-8", errors="replace")
        for line in reversed(tail.splitlines()):
            try:
                return AnchorRecord.from_json(line)
            except AnchorFormatError:
                continue  # blank, cut at the tail's start, or edited: `verify` reports those
        return None

    def read(self) -> tuple[list[AnchorRecord], list[str]]:
        """The anchors in the order written, and a problem for each line that is not one."""
        if not self.path.exists():
            return [], []
        anchors: list[AnchorRecord] = []
        problems: list[str] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                anchors.append(AnchorRecord.from_json(line))
            except AnchorFormatError:
                problems.append(f"anchor file {self.path} line {number} is not an anchor (edited)")
        return anchors, problems


async def read_topic_anchors(
    infra: InfraSettings, topic: str, chain: str, *, within: float = 30.0
) -> tuple[list[AnchorRecord], list[str]]:
    """Every anchor of `chain` still on the topic, oldest first (compaction keeps the newest)."""
    admin = AIOKafkaAdminClient(**client_options(infra))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code", 0) != 0 or not described.get("partitions"):
        return [], [f"anchor topic {topic!r} does not exist"]
    consumer = AIOKafkaConsumer(
        **client_options(infra), enable_auto_commit=False, request_timeout_ms=15_000
    )
    await consumer.start()
    anchors: list[AnchorRecord] = []
    problems: list[str] = []
    try:
        assigned = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        key = chain.encode()
        async with asyncio.timeout(within):
            while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(*assigned, timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if record.key != key:
                            continue
                        if record.value is None:  # a tombstone: compaction drops what precedes
                            anchors.clear()
                            continue
                        try:
                            anchors.append(AnchorRecord.from_json(record.value))
                        except AnchorFormatError:
                            problems.append(
                                f"topic {topic} offset {record.offset} holds no anchor (forged)"
                            )
    finally:
        await consumer.stop()
    return anchors, problems


async def publish_anchor(producer: AIOKafkaProducer, topic: str, record: AnchorRecord) -> None:
    """Publish and wait for the broker's acknowledgement."""
    await producer.send_and_wait(topic, record.to_json().encode(), key=record.chain.encode())


def _against_chain(
    anchor: AnchorRecord, chain: VerifyResult, stored: Mapping[int, str], where: str
) -> str:
    """'' when the database still holds what the anchor says, else what is wrong."""
    if anchor.seq == 0:
        return "" if anchor.row_hash == GENESIS_HASH else f"{where}: genesis anchor altered"
    if anchor.seq < chain.start.seq:
        return ""  # pruned under a sealed retention event; nothing left to compare
    if anchor.seq == chain.start.seq:
        expected = chain.start.row_hash
    elif anchor.seq in stored:
        expected = stored[anchor.seq]
    elif chain.ok and anchor.seq > chain.head.seq:
        return (
            f"{where}: anchored seq {anchor.seq} but the chain ends at seq {chain.head.seq}"
            " (rows after an anchor were deleted)"
        )
    else:
        return f"{where}: anchored row {anchor.seq} is missing from the database (deleted)"
    if expected != anchor.row_hash:
        return (
            f"{where}: row {anchor.seq}'s hash differs from its anchor"
            " (the row or one before it was rewritten)"
        )
    return ""


def check_anchors(
    *,
    key: bytes,
    chain_name: str,
    file_anchors: Sequence[AnchorRecord],
    topic_anchors: Sequence[AnchorRecord],
    chain: VerifyResult,
    stored: Mapping[int, str],
) -> list[str]:
    """Every way the anchors and the database disagree (empty when they agree)."""
    problems: list[str] = []
    sealed: dict[str, list[AnchorRecord]] = {"file": [], "topic": []}
    for source, anchors in (("file", file_anchors), ("topic", topic_anchors)):
        for anchor in anchors:
            where = f"{source} anchor seq {anchor.seq}"
            if anchor.chain != chain_name:
                problems.append(f"{where} belongs to chain {anchor.chain!r} (moved)")
            elif not anchor_sealed(key, anchor):
                problems.append(f"{where} is not sealed by the key (anchor edited or forged)")
            else:
                sealed[source].append(anchor)
                problem = _against_chain(anchor, chain, stored, where)
                if problem:
                    problems.append(problem)
    in_file, on_topic = sealed["file"], sealed["topic"]
    if not in_file and not on_topic:
        if chain.head.seq > 0:
            problems.append("the chain has no anchor in the file or on the topic")
    elif not in_file or not on_topic:
        empty = "file" if not in_file else "topic"
        problems.append(f"the anchor {empty} holds no anchor while the other does")
    elif in_file[-1] != on_topic[-1]:
        problems.append(
            f"the newest anchors disagree: file seq {in_file[-1].seq}, topic seq"
            f" {on_topic[-1].seq} (one of them was rolled back or edited)"
        )
    return problems


def anchor_seqs(*groups: Iterable[AnchorRecord]) -> set[int]:
    return {anchor.seq for group in groups for anchor in group}


@dataclass(frozen=True)
class AnchorReport:
    chain: VerifyResult
    problems: list[str]
    anchors: int  # sealed anchors checked across file and topic

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems


async def verify_with_anchors(settings: AuditSettings, store: AuditStore) -> AnchorReport:
    """Read the anchors first (so none is newer than the snapshot verified), then the chain."""
    file = AnchorFile(settings.anchor_file)
    for _attempt in range(3):  # the service may anchor between the two reads: read again
        try:
            topic_anchors, topic_problems = await read_topic_anchors(
                settings.infra, settings.anchor_topic, settings.db_schema
            )
        except Exception as exc:  # an unreadable topic is a failed check, reported as such
            topic_anchors, topic_problems = [], [f"anchor topic unreadable: {exc!r}"]
        file_anchors, file_problems = file.read()
        if not file_anchors or not topic_anchors or file_anchors[-1] == topic_anchors[-1]:
            break
    chain = await store.verify()
    stored = await store.row_hashes(anchor_seqs(file_anchors, topic_anchors))
    problems = (
        file_problems
        + topic_problems
        + check_anchors(
            key=settings.mac_key_bytes,
            chain_name=settings.db_schema,
            file_anchors=file_anchors,
            topic_anchors=topic_anchors,
            chain=chain,
            stored=stored,
        )
    )
    return AnchorReport(chain, problems, len(anchor_seqs(file_anchors, topic_anchors)))


class Anchorer:
    """Anchors the chain's head on a schedule, from one process at a time (a session lock)."""

    def __init__(
        self,
        settings: AuditSettings,
        store: AuditStore,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.file = AnchorFile(settings.anchor_file)
        self.producer = producer or create_producer(settings.infra, client_id="audit-anchors")
        self._own_producer = producer is None
        self.last: AnchorRecord | None = None
        self.lock_key = zlib.crc32(f"alama-audit-anchors:{settings.db_schema}".encode())
        self._lock_conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        if self._own_producer:
            await self.producer.start()
        in_file, _ = self.file.read()
        sealed = [a for a in in_file if anchor_sealed(self.settings.mac_key_bytes, a)]
        self.last = sealed[-1] if sealed else None

    async def stop(self) -> None:
        if self._lock_conn is not None:
            await self.store.pool.release(self._lock_conn)
            self._lock_conn = None
        if self._own_producer:
            await self.producer.stop()

    async def _leading(self) -> bool:
        """Whether this process anchors: it holds a session advisory lock on a kept connection
        (a lost connection loses the lock, so it is checked on every tick)."""
        if self._lock_conn is not None:
            try:
                await self._lock_conn.fetchval("SELECT 1")
            except (asyncpg.PostgresError, OSError):
                lost, self._lock_conn = self._lock_conn, None
                with contextlib.suppress(asyncpg.PostgresError, OSError):
                    await self.store.pool.release(lost)
        if self._lock_conn is None:
            conn = await self.store.pool.acquire()
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                self._lock_conn = conn
            else:
                await self.store.pool.release(conn)
        return self._lock_conn is not None

    async def _extends_last(self, head: ChainHead) -> bool:
        last = self.last
        if last is None or last.seq == 0:
            return True
        if head.seq < last.seq:
            return False
        if head.seq == last.seq:
            return head.row_hash == last.row_hash
        stored = await self.store.row_hashes([last.seq])
        return last.seq not in stored or stored[last.seq] == last.row_hash  # absent: pruned

    async def anchor(self) -> AnchorRecord | None:
        """Anchor the current head if it moved; refuse (and say so) if it no longer extends
        the last anchor. Returns the new anchor, if any."""
        if not await self._leading():
            return None
        try:
            head = await self.store.head()
        except ChainTampered:
            ANCHORS_REFUSED.inc()
            log.exception("audit chain head is not sealed; not anchoring it")
            return None
        if self.last is not None and self.last.head == head:
            return None
        if not await self._extends_last(head):
            ANCHORS_REFUSED.inc()
            log.error(
                "audit chain no longer extends its last anchor; not anchoring",
                extra={"anchored_seq": self.last.seq if self.last else 0, "head_seq": head.seq},
            )
            return None
        record = seal_anchor(
            self.settings.mac_key_bytes, self.settings.db_schema, head, datetime.now(UTC)
        )
        self.file.append(record)
        await publish_anchor(self.producer, self.settings.anchor_topic, record)
        self.last = record
        ANCHORS_WRITTEN.inc()
        ANCHORED_SEQ.set(record.seq)
        return record

    async def heal_topic(self) -> None:
        """After a crash between the file and the topic, the topic gets the file's newest."""
        if self.last is None or not await self._leading():
            return
        on_topic, _ = await read_topic_anchors(
            self.settings.infra, self.settings.anchor_topic, self.settings.db_schema
        )
        newest = on_topic[-1] if on_topic else None
        if (
            newest is None
            or not anchor_sealed(self.settings.mac_key_bytes, newest)
            or newest.seq < self.last.seq
        ):
            await publish_anchor(self.producer, self.settings.anchor_topic, self.last)

    async def run(self, stop: asyncio.Event) -> None:
        """Anchor now, every interval, and once more on the way out."""
        try:
            await self.heal_topic()
        except Exception:  # the broker may be down at start; anchoring goes on regardless
            log.exception("could not compare the anchor topic with the anchor file")
        while True:
            try:
                await self.anchor()
            except Exception:  # an outage must not end anchoring; the next tick retries
                log.exception("audit anchoring failed; retrying on the next tick")
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.anchor_interval_seconds)
