"""The audit service on the real broker and PostgreSQL: idempotence, chain, erasure, retention,
and every route a review found to rewrite the chain from inside the database.

Every test uses its own PostgreSQL schema, anchor file and scratch topics and consumer group, so it
never sees (or leaves behind) anyone else's data. The service's store logs in as the writer role;
tampering is done as the schema's owner, the most a database login can hold short of a superuser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from services.audit.__main__ import app as audit_cli
from services.audit.anchors import (
    Anchorer,
    AnchorFile,
    AnchorReport,
    publish_anchor,
    read_topic_anchors,
    seal_anchor,
    verify_with_anchors,
)
from services.audit.chain import (
    ERASURE_PAYLOAD_TYPE,
    RETENTION_PAYLOAD_TYPE,
    RETENTION_TOPIC,
    ChainHead,
    ChainRow,
    EntryDraft,
    canonical_content,
    canonical_json,
    chain_hash,
    draft_from_event,
    draft_from_payload,
    retention_payload,
    row_mac,
    seal_all,
)
from services.audit.consumer import build_consumer, run_consumer
from services.audit.reader import AuditReader
from services.audit.server import start_server
from services.audit.settings import AuditSettings
from services.audit.store import (
    ROW_COLUMNS,
    AuditStore,
    ChainTampered,
    MigrationError,
    RetentionRefused,
)
from services.audit.trail import TrailReader
from services.common.envelope import decode, encode, wrap
from services.common.kafka import create_producer, publish
from services.common.postgres import create_pool
from services.common.protos.alama.audit.v1 import audit_pb2, audit_pb2_grpc
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.settings import InfraSettings
from services.common.topics import (
    CREDIT_DECISIONS,
    CREDIT_EXPLANATIONS,
    LOAN_APPLICATIONS,
    REVIEW_OUTCOMES,
    CleanupPolicy,
    TopicSpec,
    ensure_topics,
)

pytestmark = pytest.mark.integration

KINDS: tuple[type[Message], ...] = (
    LoanApplicationSubmitted,
    CreditDecision,
    CreditExplanation,
    ReviewOutcome,
)


@dataclass
class AuditFixture:
    settings: AuditSettings
    store: AuditStore  # the service's: logged in as the writer
    owner: AuditStore  # migrations, retention, erasure: logged in as the schema's owner
    pool: asyncpg.Pool  # the writer's
    owner_pool: asyncpg.Pool

    def env(self) -> dict[str, str]:
        """What points a CLI run at this chain."""
        return {
            "ALAMA_AUDIT_DB_SCHEMA": self.settings.db_schema,
            "ALAMA_AUDIT_ANCHOR_DIR": str(self.settings.anchor_dir),
            "ALAMA_POSTGRES_DSN": self.settings.infra.postgres_dsn,
            "ALAMA_KAFKA_BOOTSTRAP": self.settings.infra.kafka_bootstrap,
            "ALAMA_AUDIT_METRICS_PORT": "0",
            "ALAMA_AUDIT_GRPC_PORT": "0",
            "ALAMA_AUDIT_ANCHOR_TOPIC": self.settings.anchor_topic,
        }


async def _pool(infra: InfraSettings, dsn: str) -> asyncpg.Pool:
    return await create_pool(infra.model_copy(update={"postgres_dsn": dsn}), max_size=6)


@pytest.fixture
async def audit(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[AuditFixture]:
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    anchors = TopicSpec(
        f"test.audit-anchors.{uuid.uuid4().hex[:12]}",
        partitions=1,
        retention_days=1,
        cleanup_policy=CleanupPolicy.COMPACT,
        consumed=False,
    )
    await ensure_topics(infra.kafka_bootstrap, [anchors])
    settings = AuditSettings(
        infra=infra,
        db_schema=schema,
        consumer_group=f"audit-test-{uuid.uuid4().hex}",
        metrics_port=0,
        anchor_dir=tmp_path / "anchors",
        anchor_topic=anchors.name,
    )
    owner_pool = await _pool(infra, settings.owner_dsn)
    pool = await _pool(infra, settings.writer_dsn)
    key = settings.mac_key_bytes
    owner = AuditStore(owner_pool, schema, mac_key=key)
    await owner.migrate(writer=settings.writer_user, readers=settings.readers)
    try:
        yield AuditFixture(settings, AuditStore(pool, schema, mac_key=key), owner, pool, owner_pool)
    finally:
        await pool.close()
        async with owner_pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await owner_pool.close()


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 45.0) -> None:
    """Poll a condition until it holds, failing after `within` seconds."""
    async with asyncio.timeout(within):
        # The condition lives in PostgreSQL, so there is no event to await: poll it.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def application_events(app: str, member: str, tenant: str = "") -> list[EventEnvelope]:
    """One application's life: submission, decision, explanation and a review."""
    return [
        wrap(
            LoanApplicationSubmitted(
                application_id=app,
                member_id=member,
                national_id_hash=f"nid-{member}",
                amount_kes=30_000.0,
                term_months=12,
                tenant_id=tenant,
            ),
            producer="core-banking",
            subject=app,
        ),
        wrap(
            CreditDecision(
                decision_id=f"d-{app}",
                application_id=app,
                member_id=member,
                score=610,
                band=DecisionBand.DECISION_BAND_REVIEW,
                features={"deposit_months": 18.0},
                tenant_id=tenant,
            ),
            producer="scoring",
            subject=app,
        ),
        wrap(
            CreditExplanation(
                decision_id=f"d-{app}", application_id=app, model_version="v1", tenant_id=tenant
            ),
            producer="explanation",
            subject=app,
        ),
        wrap(
            ReviewOutcome(
                review_id=f"r-{app}",
                decision_id=f"d-{app}",
                application_id=app,
                reviewer_id="officer-7",
                original_band=DecisionBand.DECISION_BAND_REVIEW,
                final_band=DecisionBand.DECISION_BAND_APPROVE,
                justification="guarantors confirmed",
                tenant_id=tenant,
            ),
            producer="gateway",
            subject=app,
        ),
    ]


async def test_consumer_appends_once_and_chain_survives_erasure_and_retention(
    audit: AuditFixture, infra: InfraSettings, spans: InMemorySpanExporter
) -> None:
    run = uuid.uuid4().hex[:8]
    specs = {
        kind: TopicSpec(f"test.audit.{run}.{i}", partitions=3, retention_days=1)
        for i, kind in enumerate(KINDS)
    }
    await ensure_topics(infra.kafka_bootstrap, list(specs.values()))
    topic_of = {kind.DESCRIPTOR.full_name: spec.name for kind, spec in specs.items()}
    members = {f"app-{run}-{i}": f"member-{run}-{i}" for i in range(3)}
    envelopes = [e for app, member in members.items() for e in application_events(app, member)]
    event_ids = {e.event_id for e in envelopes}

    producer = create_producer(infra, client_id="audit-test")
    await producer.start()
    consumer = build_consumer(
        audit.settings, audit.store, {spec.name: (kind,) for kind, spec in specs.items()}
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    tracer = trace.get_tracer("test")
    store = audit.store
    try:
        with tracer.start_as_current_span("submit applications"):
            for envelope in envelopes:
                await (await publish(producer, topic_of[envelope.payload_type], envelope))

        async def all_recorded() -> bool:
            return await store.count() == len(envelopes)

        await wait_for(all_recorded)
        async with audit.pool.acquire() as conn:
            stored = {
                r["event_id"] for r in await conn.fetch(f"SELECT event_id FROM {store.events}")
            }
        assert stored == event_ids

        # A redelivered event adds no row; a later event on the same partition proves it was read.
        duplicates_before = metric("alama_audit_duplicates_total")
        first_app = next(iter(members))
        duplicate = envelopes[0]
        sentinel = wrap(
            LoanApplicationSubmitted(application_id=f"late-{run}", member_id="late"),
            producer="core-banking",
            subject=duplicate.subject,
        )
        topic = topic_of[duplicate.payload_type]
        await (await publish(producer, topic, duplicate))
        await (await publish(producer, topic, sentinel))

        async def sentinel_recorded() -> bool:
            return bool(await store.lookup(f"late-{run}"))

        await wait_for(sentinel_recorded)
        assert await store.count() == len(envelopes) + 1
        assert metric("alama_audit_duplicates_total") == duplicates_before + 1
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, timeout=30)
        await producer.stop()

    verified = await store.verify()
    assert verified.ok and verified.rows_checked == len(envelopes) + 1, verified

    # Lookup: the application's rows in the order of its life, personal data still attached.
    records = await store.lookup(first_app)
    assert [r.row.payload_type for r in records] == [k.DESCRIPTOR.full_name for k in KINDS]
    assert all(r.row.trace_id for r in records)
    assert records[0].personal == {
        "member_id": members[first_app],
        "national_id_hash": f"nid-{members[first_app]}",
        "amount_kes": 30_000.0,  # what the member declared is theirs too
    }
    assert members[first_app] not in records[0].row.payload

    # The table refuses direct edits while its trigger is on, even to its owner.
    async with audit.owner_pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(f"UPDATE {store.events} SET producer = 'x' WHERE seq = 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(f"DELETE FROM {store.events} WHERE seq = 1")

    # Erasure (as the owner): personal data gone, erasure recorded, chain intact.
    erased = await audit.owner.erase_member(members[first_app])
    # the application, the decision and the review (its justification) of that member
    assert erased.events_erased == 3 and erased.erasure_seq == len(envelopes) + 2
    assert (await store.verify()).ok
    records = await store.lookup(first_app)
    assert all(r.personal is None for r in records)
    async with audit.pool.acquire() as conn:
        left = await conn.fetchval(
            f"SELECT count(*) FROM {store.schema}.personal_data WHERE member_id = $1",
            members[first_app],
        )
        leaks = await conn.fetchval(
            f"SELECT count(*) FROM {store.events} WHERE strpos(payload, $1) > 0 OR subject = $1",
            members[first_app],
        )
        erasure_type = await conn.fetchval(
            f"SELECT payload_type FROM {store.events} WHERE seq = $1", erased.erasure_seq
        )
    assert (left, leaks, erasure_type) == (0, 0, ERASURE_PAYLOAD_TYPE)
    other = await store.lookup(f"app-{run}-1")
    assert other[0].personal is not None  # other members keep theirs

    # Retention, eight years on: prune everything recorded before the sentinel, as an event.
    later = AuditStore(
        audit.owner_pool,
        store.schema,
        mac_key=audit.settings.mac_key_bytes,
        clock=lambda: datetime.now(UTC) + timedelta(days=8 * 365),
    )
    (late,) = await store.lookup(f"late-{run}")
    min_age = audit.settings.retention_min_age
    pruned = await later.apply_retention(late.row.recorded_at, min_age=min_age, requested_by="dpo")
    assert pruned.rows_pruned == late.row.seq - 1
    assert pruned.through.seq == late.row.seq - 1
    assert pruned.event_seq == erased.erasure_seq + 1
    after = await store.verify()
    # the sentinel, the erasure record and the retention event
    assert after.ok and after.rows_checked == 3, after
    assert after.start == pruned.through
    assert await store.lookup(first_app) == []
    nothing = await later.apply_retention(
        late.row.recorded_at - timedelta(days=1), min_age=min_age, requested_by="dpo"
    )
    assert (nothing.rows_pruned, nothing.event_seq) == (0, None)


async def test_verify_points_at_altered_and_deleted_rows(audit: AuditFixture) -> None:
    store = audit.store
    drafts = [
        draft_from_event(decode(encode(envelope)), "loan.applications")
        for i in range(4)
        for envelope in application_events(f"app-{i}", f"member-{i}")[:2]
    ]
    # Concurrent writers still build one linear chain.
    results = await asyncio.gather(*(store.append(drafts[i::4]) for i in range(4)))
    assert sum(r.appended for r in results) == len(drafts)
    assert (await store.append(drafts[:3])).duplicates == 3
    assert (await store.verify()).ok

    async def tamper(sql: str) -> None:
        async with audit.owner_pool.acquire() as conn, conn.transaction():
            await conn.execute(f"ALTER TABLE {store.events} DISABLE TRIGGER events_append_only")
            await conn.execute(sql)
            await conn.execute(f"ALTER TABLE {store.events} ENABLE TRIGGER events_append_only")

    async with audit.pool.acquire() as conn:
        original = await conn.fetchval(f"SELECT payload FROM {store.events} WHERE seq = 3")
    await tamper(
        f"UPDATE {store.events} SET payload = replace(payload, '\"app-', '\"APP-') WHERE seq = 3"
    )
    async with audit.pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT payload FROM {store.events} WHERE seq = 3") != original
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, 3), result
    assert "altered" in result.reason

    await tamper(f"UPDATE {store.events} SET payload = $${original}$$ WHERE seq = 3")
    assert (await store.verify()).ok

    await tamper(f"DELETE FROM {store.events} WHERE seq = 5")
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, 6), result
    assert "gap" in result.reason


async def test_the_running_service_anchors_its_head_on_a_schedule_and_on_the_way_out(
    audit: AuditFixture, infra: InfraSettings, scratch_topic: TopicSpec
) -> None:
    settings = audit.settings.model_copy(update={"anchor_interval_seconds": 0.2})
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(settings, audit.store, stop, {scratch_topic.name: (LoanApplicationSubmitted,)})
    )
    producer = create_producer(infra, client_id="audit-test-anchoring")
    await producer.start()
    try:
        for i in range(3):
            envelope = application_events(f"sched-{i}", f"sched-member-{i}")[0]
            await (await publish(producer, scratch_topic.name, envelope))

            async def anchored(seq: int = i + 1) -> bool:
                anchors, _ = AnchorFile(settings.anchor_file).read()
                return bool(anchors) and anchors[-1].seq == seq

            await wait_for(anchored)  # each new head is anchored within a tick
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    report = await verify_with_anchors(settings, audit.store)
    assert report.ok and report.anchors >= 3, report
    code, output = await cli(audit, "verify")
    assert code == 0 and "anchors ok" in output, output


# ------------------------------------------------------------- tampering from inside PostgreSQL
# Each route a review of the chain found, tried with the most a database login can hold (the
# schema's owner, trigger switched off) or with the service's own writer login.

ATTACKER_KEY = b"anything but the key"


def drafts(prefix: str, applications: int) -> list[EntryDraft]:
    """Two rows per application (submission and decision)."""
    return [
        draft_from_event(decode(encode(envelope)), "loan.applications")
        for i in range(applications)
        for envelope in application_events(f"{prefix}-{i}", f"{prefix}-member-{i}")[:2]
    ]


async def stored_rows(audit: AuditFixture) -> list[ChainRow]:
    async with audit.owner_pool.acquire() as conn:
        records = await conn.fetch(f"SELECT {ROW_COLUMNS} FROM {audit.store.events} ORDER BY seq")
    return [ChainRow(**dict(record)) for record in records]


def rechain(rows: list[ChainRow], prev_hash: str, key: bytes = ATTACKER_KEY) -> list[ChainRow]:
    """What someone without the key can do: recompute every hash, seal with a guess."""
    out: list[ChainRow] = []
    for row in rows:
        row = replace(row, prev_hash=prev_hash)
        row_hash = chain_hash(prev_hash, canonical_content(row))
        out.append(replace(row, row_hash=row_hash, row_mac=row_mac(key, row_hash)))
        prev_hash = row_hash
    return out


def as_record(row: ChainRow) -> tuple[object, ...]:
    return tuple(getattr(row, column.strip()) for column in ROW_COLUMNS.split(","))


async def owner_without_trigger(audit: AuditFixture, *statements: str) -> None:
    async with audit.owner_pool.acquire() as conn, conn.transaction():
        await conn.execute(f"ALTER TABLE {audit.store.events} DISABLE TRIGGER events_append_only")
        for sql in statements:
            await conn.execute(sql)
        await conn.execute(f"ALTER TABLE {audit.store.events} ENABLE TRIGGER events_append_only")


async def owner_overwrite(audit: AuditFixture, rows: list[ChainRow]) -> None:
    """Replace the stored rows from the first of `rows` on by `rows`."""
    events = audit.store.events
    async with audit.owner_pool.acquire() as conn, conn.transaction():
        await conn.execute(f"ALTER TABLE {events} DISABLE TRIGGER events_append_only")
        await conn.execute(f"DELETE FROM {events} WHERE seq >= $1", rows[0].seq)
        await conn.executemany(
            f"INSERT INTO {events} ({ROW_COLUMNS}) VALUES"
            " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
            [as_record(row) for row in rows],
        )
        await conn.execute(f"ALTER TABLE {events} ENABLE TRIGGER events_append_only")


async def cli(audit: AuditFixture, *args: str) -> tuple[int, str]:
    """Run the audit CLI in process (in a thread: it runs its own event loop); the output with
    the console's line wrapping undone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke, audit_cli, list(args), env=audit.env(), catch_exceptions=True
        )
    finally:  # the CLI logs to the runner's captured stdout, closed once it returns
        root.handlers[:], root.level = handlers, level
    return result.exit_code, " ".join(result.output.split())


def problems_mention(report: AnchorReport, text: str) -> bool:
    return any(text in problem for problem in report.problems)


async def test_the_service_and_shared_logins_can_neither_rewrite_nor_unprotect_the_chain(
    audit: AuditFixture,
) -> None:
    await audit.store.append(drafts("priv", 2))
    events, personal = audit.store.events, f"{audit.store.schema}.personal_data"
    refused = [
        f"UPDATE {events} SET producer = 'x' WHERE seq = 1",
        f"DELETE FROM {events} WHERE seq = 4",
        f"TRUNCATE {events}",
        f"ALTER TABLE {events} DISABLE TRIGGER events_append_only",
        f"DROP TRIGGER events_append_only ON {events}",
        f"ALTER TABLE {events} ADD COLUMN note text",
        f"CREATE OR REPLACE FUNCTION {audit.store.schema}.events_append_only() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
    ]
    async with audit.pool.acquire() as conn:  # the service's writer login
        for sql in [*refused, f"DELETE FROM {personal}"]:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
        async with conn.transaction():  # the old session flag opens nothing any more
            await conn.execute("SELECT set_config('alama.audit_maintenance', 'retention', true)")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"DELETE FROM {events} WHERE seq = 4")
    shared = await asyncpg.connect(audit.settings.infra.postgres_dsn)  # everyone's login
    try:
        assert await shared.fetchval(f"SELECT count(*) FROM {events}") == 4  # it may read
        for sql in [*refused, f"SELECT * FROM {personal}"]:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await shared.execute(sql)
    finally:
        await shared.close()
    async with audit.owner_pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('alama.audit_maintenance', 'retention', true)")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(f"DELETE FROM {events} WHERE seq = 4")
    assert (await audit.store.verify()).ok
    # A deployment cannot make the service its own tables' owner.
    with pytest.raises(MigrationError, match="must not own"):
        await audit.owner.migrate(writer=audit.settings.owner_user)


async def test_trigger_disabled_and_hashes_recomputed_is_caught_by_the_seal(
    audit: AuditFixture,
) -> None:
    store = audit.store
    await store.append(drafts("mac", 3))
    rows = await stored_rows(audit)
    assert (await store.verify()).ok

    # The owner switches the trigger off, rewrites row 3 and recomputes every hash after it.
    altered = replace(
        rows[2], payload=canonical_json(json.loads(rows[2].payload) | {"amount_kes": 1.0})
    )
    forged = rechain([altered, *rows[3:]], rows[1].row_hash)
    await owner_overwrite(audit, forged)
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, 3), result
    assert "row_mac does not match" in result.reason
    # ...or drops the seals altogether
    await owner_overwrite(audit, [replace(row, row_mac="") for row in forged])
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, 3), result
    assert "not sealed" in result.reason
    # The service will not build on a head it did not seal (that would bury the evidence).
    with pytest.raises(ChainTampered):
        await store.append(drafts("after", 1))

    # Put the true rows back: the chain verifies again.
    await owner_overwrite(audit, rows[2:])
    assert (await store.verify()).ok

    # The writer login may insert: a row it forges at the head is caught the same way.
    (extra,) = rechain(
        [replace(rows[-1], seq=rows[-1].seq + 1, event_id="forged")], rows[-1].row_hash
    )
    async with audit.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {store.events} ({ROW_COLUMNS}) VALUES"
            " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
            *as_record(extra),
        )
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, extra.seq), result
    with pytest.raises(ChainTampered):
        await store.append(drafts("after", 1))


async def test_a_deleted_or_replaced_suffix_is_caught_by_the_anchors(audit: AuditFixture) -> None:
    store, settings = audit.store, audit.settings
    anchorer = Anchorer(settings, store)
    await anchorer.start()
    try:
        await store.append(drafts("sfx", 3))
        anchored = await anchorer.anchor()
        assert anchored is not None and anchored.seq == 6
        await store.append(drafts("sfx-late", 1))
        report = await verify_with_anchors(settings, store)
        assert report.ok and report.anchors == 1, report
        code, output = await cli(audit, "verify")
        assert code == 0, output
        rows = await stored_rows(audit)

        # The owner deletes the newest rows, past the anchor: the chain itself still verifies...
        await owner_without_trigger(audit, f"DELETE FROM {store.events} WHERE seq >= 5")
        assert (await store.verify()).ok
        # ...but not against its anchors, and the service will not anchor the shorter chain.
        report = await verify_with_anchors(settings, store)
        assert not report.ok
        assert problems_mention(report, "chain ends at seq 4"), report.problems
        assert await anchorer.anchor() is None
        code, output = await cli(audit, "verify")
        assert code == 1 and "rows after an anchor were deleted" in output, output

        # Re-inserting a suffix of the same length, hashes recomputed, is caught twice over.
        fakes = [
            replace(row, payload=canonical_json(json.loads(row.payload) | {"score": 900}))
            if row.payload_type.endswith("CreditDecision")
            else row
            for row in rows[4:]
        ]
        await owner_overwrite(audit, rechain(fakes, rows[3].row_hash))
        report = await verify_with_anchors(settings, store)
        assert (report.chain.ok, report.chain.first_broken_seq) == (False, 5), report.chain
        assert problems_mention(report, "row 6's hash differs from its anchor"), report.problems

        # Re-inserting the true rows but one is a gap.
        await owner_overwrite(audit, rows[4:5] + rows[6:])
        report = await verify_with_anchors(settings, store)
        assert not report.chain.ok and "gap" in report.chain.reason
        assert problems_mention(report, "anchored row 6 is missing"), report.problems

        # With every true row back, all agrees again.
        await owner_overwrite(audit, rows[4:])
        assert (await verify_with_anchors(settings, store)).ok
    finally:
        await anchorer.stop()


async def test_edited_or_rolled_back_anchors_are_caught(audit: AuditFixture) -> None:
    store, settings = audit.store, audit.settings
    anchorer = Anchorer(settings, store)
    await anchorer.start()
    producer = create_producer(settings.infra, client_id="audit-test-anchors")
    await producer.start()
    try:
        await store.append(drafts("anc", 1))
        first = await anchorer.anchor()
        await store.append(drafts("anc-2", 1))
        second = await anchorer.anchor()
        assert first is not None and second is not None
        assert await anchorer.anchor() is None  # the head did not move
        on_topic, _ = await read_topic_anchors(
            settings.infra, settings.anchor_topic, settings.db_schema
        )
        assert on_topic == [first, second]
        report = await verify_with_anchors(settings, store)
        assert report.ok and report.anchors == 2, report
        path = settings.anchor_file
        original = path.read_text()
        lines = original.splitlines()

        # The file's newest anchor edited to match a rewritten chain: its seal fails.
        edited = json.loads(lines[-1]) | {"row_hash": "f" * 64}
        path.write_text("\n".join([*lines[:-1], json.dumps(edited)]) + "\n")
        report = await verify_with_anchors(settings, store)
        assert problems_mention(report, "file anchor seq 4 is not sealed"), report.problems
        # Garbage in the file is named too.
        path.write_text(original + "not an anchor\n")
        report = await verify_with_anchors(settings, store)
        assert problems_mention(report, "is not an anchor"), report.problems

        # The file rolled back by a line (hiding the newest anchor): file and topic disagree.
        path.write_text(lines[0] + "\n")
        report = await verify_with_anchors(settings, store)
        assert problems_mention(report, "newest anchors disagree"), report.problems
        path.unlink()  # ...or deleted
        report = await verify_with_anchors(settings, store)
        assert problems_mention(report, "anchor file holds no anchor"), report.problems
        path.write_text(original)
        assert (await verify_with_anchors(settings, store)).ok

        # The topic rolled back: an older (genuinely sealed) anchor published again.
        await publish_anchor(producer, settings.anchor_topic, first)
        report = await verify_with_anchors(settings, store)
        assert problems_mention(report, "newest anchors disagree"), report.problems
        code, output = await cli(audit, "verify")
        assert code == 1 and "disagree" in output, output

        # An anchor forged without the key.
        head = ChainHead(second.seq, second.row_hash)
        forged = seal_anchor(ATTACKER_KEY, settings.db_schema, head, datetime.now(UTC))
        await publish_anchor(producer, settings.anchor_topic, forged)
        report = await verify_with_anchors(settings, store)
        assert problems_mention(report, "topic anchor seq 4 is not sealed"), report.problems

        # The service heals the topic from its file (a crash between the two writes looks so).
        await anchorer.heal_topic()
        assert not problems_mention(await verify_with_anchors(settings, store), "disagree")
    finally:
        await producer.stop()
        await anchorer.stop()


async def test_a_deleted_prefix_needs_a_sealed_retention_event(audit: AuditFixture) -> None:
    store = audit.store
    await store.append(drafts("pre", 3))
    rows = await stored_rows(audit)
    # The old route: delete the oldest rows and move the start (the `anchor` table) past them.
    await owner_without_trigger(audit, f"DELETE FROM {store.events} WHERE seq <= 2")
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, 3), result
    assert "no sealed retention event" in result.reason
    # A retention event the writer forges to excuse it is not sealed.
    forged_event = draft_from_payload(
        event_id="retention-forged",
        topic=RETENTION_TOPIC,
        payload_type=RETENTION_PAYLOAD_TYPE,
        producer="mallory",
        occurred_at=datetime.now(UTC) + timedelta(days=3000),
        subject="",
        payload=retention_payload(
            requested_by="mallory",
            cutoff=datetime.now(UTC),
            min_age_days=1,
            through=ChainHead(2, rows[1].row_hash),
        ),
    )
    (forged,) = seal_all(
        [forged_event],
        after=ChainHead(rows[-1].seq, rows[-1].row_hash),
        recorded_at=datetime.now(UTC) + timedelta(days=3000),
        key=ATTACKER_KEY,
    )
    async with audit.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {store.events} ({ROW_COLUMNS}) VALUES"
            " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
            *as_record(forged),
        )
    result = await store.verify()
    assert (result.ok, result.first_broken_seq) == (False, forged.seq), result
    assert "row_mac" in result.reason


async def test_retention_younger_than_the_minimum_age_is_refused_everywhere(
    audit: AuditFixture,
) -> None:
    store, owner, settings = audit.store, audit.owner, audit.settings
    await store.append(drafts("ret", 2))
    before = await store.count()

    # `--days 0` (and anything under the minimum) is refused by the CLI...
    code, output = await cli(audit, "retention", "--days", "0")
    assert code == 2 and "refused" in output, output
    code, output = await cli(audit, "retention", "--days", str(settings.retention_min_days - 1))
    assert code == 2 and "refused" in output, output
    code, output = await cli(audit, "retention")  # the configured period: nothing is that old
    assert code == 0 and "nothing pruned" in output, output
    # ...the minimum itself cannot be set to nothing, nor the period below it...
    with pytest.raises(ValueError, match="retention_min_days"):
        AuditSettings(infra=settings.infra, retention_min_days=0)
    with pytest.raises(ValueError, match="below retention_min_days"):
        AuditSettings(infra=settings.infra, retention_days=30)
    # ...the store refuses it too, whatever minimum a caller passes...
    now = datetime.now(UTC)
    with pytest.raises(RetentionRefused):
        await owner.apply_retention(now, min_age=settings.retention_min_age, requested_by="x")
    with pytest.raises(RetentionRefused):
        await owner.apply_retention(now, min_age=timedelta(0), requested_by="x")
    assert await store.count() == before

    # ...and PostgreSQL deletes nothing under a retention event without a minimum age, even a
    # sealed one, even for the owner.
    too_young = draft_from_payload(
        event_id="retention-too-young",
        topic=RETENTION_TOPIC,
        payload_type=RETENTION_PAYLOAD_TYPE,
        producer="x",
        occurred_at=now,
        subject="",
        payload=retention_payload(
            requested_by="x", cutoff=now + timedelta(seconds=5), min_age_days=0,
            through=ChainHead(2, "h"),
        ),
    )  # fmt: skip
    await store.append([too_young])
    async with audit.owner_pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(f"DELETE FROM {store.events} WHERE seq <= 2")
    result = await store.verify()
    assert not result.ok and "younger than its minimum age" in result.reason


async def test_a_chain_from_before_sealing_is_adopted_once_and_still_guarded(
    audit: AuditFixture,
) -> None:
    store, owner, settings = audit.store, audit.owner, audit.settings
    await store.append(drafts("old", 2))
    # What a chain written by the earlier service looks like: no seal column.
    async with audit.owner_pool.acquire() as conn:
        await conn.execute(f"ALTER TABLE {store.events} DROP COLUMN row_mac")
    adopted = await owner.migrate(writer=settings.writer_user, readers=settings.readers)
    assert adopted == 5
    assert await owner.migrate(writer=settings.writer_user, readers=settings.readers) is None
    await store.append(drafts("new", 1))
    assert (await store.verify()).ok
    # The adopted rows are still bound by the hashes the sealed adoption event holds.
    rows = await stored_rows(audit)
    assert [bool(row.row_mac) for row in rows] == [False] * 4 + [True] * 3
    forged = rechain([replace(rows[1], producer="mallory"), *rows[2:4]], rows[0].row_hash, key=b"")
    await owner_overwrite(audit, [replace(row, row_mac="") for row in forged] + rows[4:])
    result = await store.verify()
    assert not result.ok and result.first_broken_seq == 5, result


async def test_the_reader_answers_about_a_run_with_the_shared_login(
    audit: AuditFixture, infra: InfraSettings
) -> None:
    """What the demo and bench read through the audit service (services.audit.reader), logged in
    as a reader role: the applications whose id starts with a prefix, LIKE's `_` in it literal."""
    run = uuid.uuid4().hex[:8]
    prefix = f"rd_{run}-"
    apps = {f"{prefix}{i}": f"member-{run}-{i}" for i in range(2)}
    lookalike = f"rdx{run}-0"  # matches the prefix only if `_` were a wildcard
    topic_of = {
        LoanApplicationSubmitted: LOAN_APPLICATIONS,
        CreditDecision: CREDIT_DECISIONS,
        CreditExplanation: CREDIT_EXPLANATIONS,
        ReviewOutcome: REVIEW_OUTCOMES,
    }
    topics = {kind.DESCRIPTOR.full_name: topic for kind, topic in topic_of.items()}
    envelopes = [
        e
        for app, member in [*apps.items(), (lookalike, "member-x")]
        for e in application_events(app, member)
    ]
    await audit.store.append(
        [draft_from_event(decode(encode(e)), topics[e.payload_type]) for e in envelopes]
    )

    async with AuditReader.connect(infra.postgres_dsn, audit.settings.db_schema) as reader:
        events = await reader.events(prefix)
        assert {e.application_id for e in events} == set(apps)
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert await reader.counts_by_topic(prefix) == dict.fromkeys(topic_of.values(), 2)
        assert await reader.count(prefix, CREDIT_DECISIONS) == 2
        assert [e.topic for e in await reader.events(prefix, CREDIT_DECISIONS)] == [
            CREDIT_DECISIONS
        ] * 2
        assert await reader.decision_bands(prefix) == {"DECISION_BAND_REVIEW": 2}
        [first] = await reader.decisions(prefix, limit=1)
        assert first.application_id in apps and first.decision_id == f"d-{first.application_id}"
        assert first.band == "DECISION_BAND_REVIEW"
        assert len(await reader.decision_latencies_ms(prefix)) == 2
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # never the personal data
            await reader.db.fetch(f"SELECT * FROM {audit.settings.db_schema}.personal_data")


# ------------------------------------------------------------------ the trail contract (gRPC)


async def test_a_runs_applications_are_found_through_an_index_not_a_scan_of_the_chain(
    audit: AuditFixture,
) -> None:
    """The readers pick a run's applications by the prefix of their ids; outside the C
    collation a plain index cannot serve LIKE, and one progress poll of the bench scanned a
    3.5-million-row chain. With sequential scans off the planner must find an index it can use
    for the prefix (and for one application's trail)."""
    events = audit.settings.db_schema + ".events"
    async with audit.owner_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        for where in ("application_id LIKE 'run-1234-%'", "application_id = 'run-1234-7'"):
            plan = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) SELECT count(*) FROM {events}"
                f" WHERE topic = 'credit.decisions' AND {where}"
            )
            text = json.dumps(plan)
            assert "events_application_prefix" in text and "Seq Scan" not in text, text


async def test_the_trail_contract_serves_an_application_verified_within_its_tenant_only(
    audit: AuditFixture,
) -> None:
    """GetTrail on the real store: the application's events in chain order, each verified, the
    chain verified through them and the newest anchor; another tenant's application is
    NOT_FOUND; a payload rewritten in SQL is reported broken at that record, both by the
    record's own check and, from the chain's start, by the chain's."""
    run = uuid.uuid4().hex[:8]
    app, other = f"trail-{run}", f"trail-other-{run}"
    envelopes = [
        *application_events(f"before-{run}", f"m-before-{run}", "sacco-a"),
        *application_events(app, f"m-{run}", "sacco-a"),
        *application_events(app, f"m-b-{run}", "sacco-b"),  # ids are each tenant's own
        *application_events(other, f"m-other-{run}", "sacco-b"),
    ]
    await audit.store.append([draft_from_event(decode(encode(e)), "topic") for e in envelopes])
    head = await audit.store.head()
    AnchorFile(audit.settings.anchor_file).append(
        seal_anchor(audit.settings.mac_key_bytes, audit.settings.db_schema, head, datetime.now(UTC))
    )
    reader = TrailReader(audit.store, audit.settings.anchor_file)
    server = await start_server(reader, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = audit_pb2_grpc.AuditServiceStub(channel)

    async def trail(tenant: str, application: str = app) -> audit_pb2.GetTrailResponse:
        request = audit_pb2.GetTrailRequest(tenant_id=tenant, application_id=application)
        response: audit_pb2.GetTrailResponse = await stub.GetTrail(request, timeout=10)
        return response

    try:
        mine = await trail("sacco-a")
        assert [e.seq for e in mine.events] == [5, 6, 7, 8]
        assert [e.payload_type for e in mine.events] == [k.DESCRIPTOR.full_name for k in KINDS]
        assert all(e.check.verified and not e.check.next_problem for e in mine.events), mine
        assert mine.events[1].prev_hash == mine.events[0].row_hash
        assert f"m-{run}" not in mine.events[0].payload_json  # a commitment, as stored
        assert "sha256:" in mine.events[0].payload_json
        assert mine.events[0].occurred_at.ToDatetime() <= mine.events[0].recorded_at.ToDatetime()
        chain = mine.chain
        assert chain.scope == audit_pb2.VERIFICATION_SCOPE_CHAIN and chain.ok, chain
        assert (chain.start_seq, chain.head_seq, chain.verified_through_seq) == (1, 16, 8)
        assert chain.latest_anchor.seq == 16 and chain.latest_anchor.sealed
        assert chain.latest_anchor.matches_chain

        theirs = await trail("sacco-b")
        assert [e.seq for e in theirs.events] == [9, 10, 11, 12]
        assert theirs.chain.verified_through_seq == 12  # went on from the checkpoint
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await trail("sacco-a", other)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert len((await trail("", other)).events) == 4  # an internal caller sees every tenant

        # Too long a way from the checkpoint: only the records are verified, and it says so.
        short = TrailReader(audit.store, audit.settings.anchor_file, max_rows=2)
        partial = await short.trail(app, "sacco-a")
        assert partial is not None and not partial.chain_verified
        assert partial.verified_through is not None and partial.verified_through.head.seq == 2

        # Someone with the owner's login rewrites the decision's payload in SQL.
        await owner_without_trigger(
            audit,
            f"UPDATE {audit.store.events} SET payload = replace(payload, '610', '810')"
            " WHERE seq = 6",
        )
        broken = await trail("sacco-a")  # the server's checkpoint is past it: the record says
        assert [e.check.verified for e in broken.events] == [True, False, True, True]
        assert "altered" in broken.events[1].check.problem
        assert not broken.chain.ok and broken.chain.first_broken_seq == 6, broken.chain
        reader.checkpoint = None  # and verified from the chain's start, the chain says so too
        again = await trail("sacco-a")
        assert again.chain.scope == audit_pb2.VERIFICATION_SCOPE_CHAIN
        assert (again.chain.ok, again.chain.first_broken_seq) == (False, 6)
        assert "altered" in again.chain.reason and again.chain.verified_through_seq == 5
        assert again.chain.latest_anchor.matches_chain  # the stored hashes were left alone
    finally:
        await channel.close()
        await server.stop(None)
