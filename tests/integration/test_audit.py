"""The audit service on the real broker and PostgreSQL: idempotence, chain, erasure, retention.

Every test uses its own PostgreSQL schema and its own scratch topics and consumer group, so it
never sees (or leaves behind) anyone else's data.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from services.audit.chain import ERASURE_PAYLOAD_TYPE, draft_from_event
from services.audit.consumer import build_consumer
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.common.envelope import decode, encode, wrap
from services.common.kafka import create_producer, publish
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics

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
    store: AuditStore
    pool: asyncpg.Pool


@pytest.fixture
async def audit(infra: InfraSettings) -> AsyncIterator[AuditFixture]:
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    settings = AuditSettings(
        infra=infra, db_schema=schema, group_id=f"audit-test-{uuid.uuid4().hex}", metrics_port=0
    )
    pool = await create_pool(infra, max_size=6)
    store = AuditStore(pool, schema)
    await store.create_schema()
    try:
        yield AuditFixture(settings, store, pool)
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 45.0) -> None:
    """Poll a condition until it holds, failing after `within` seconds."""
    async with asyncio.timeout(within):
        # The condition lives in PostgreSQL, so there is no event to await: poll it.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def application_events(app: str, member: str) -> list[EventEnvelope]:
    """One application's life: submission, decision, explanation and a review."""
    return [
        wrap(
            LoanApplicationSubmitted(
                application_id=app,
                member_id=member,
                national_id_hash=f"nid-{member}",
                amount_kes=30_000.0,
                term_months=12,
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
            ),
            producer="scoring",
            subject=app,
        ),
        wrap(
            CreditExplanation(decision_id=f"d-{app}", application_id=app, model_version="v1"),
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
    }
    assert members[first_app] not in records[0].row.payload

    # The table refuses direct edits while its trigger is on.
    async with audit.pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(f"UPDATE {store.events} SET producer = 'x' WHERE seq = 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(f"DELETE FROM {store.events} WHERE seq = 1")

    # Erasure: personal data gone, erasure recorded, chain intact.
    erased = await store.erase_member(members[first_app])
    assert erased.events_erased == 2 and erased.erasure_seq == len(envelopes) + 2
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

    # Retention: prune everything recorded before the sentinel; verify from the anchor.
    (late,) = await store.lookup(f"late-{run}")
    pruned = await store.prune(late.row.recorded_at)
    assert pruned.rows_pruned == late.row.seq - 1
    assert pruned.anchor.seq == late.row.seq - 1
    after = await store.verify()
    assert after.ok and after.rows_checked == 2, after  # the sentinel and the erasure record
    assert await store.lookup(first_app) == []
    assert (await store.prune(late.row.recorded_at - timedelta(days=1))).rows_pruned == 0


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
        async with audit.pool.acquire() as conn, conn.transaction():
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
