"""Members' rights on the real PostgreSQL, Redis and Kafka, through the gateway's admin API.

A tiny world is loaded into its own Feast project (offline tables, materialized online); three
members get decisions, explanations and audit rows (two of tenant A, one of tenant B) and state in
a fresh set of Faust changelog topics. Export must return each store's data; erasure must leave
nothing readable for the member in any store, leave the other member untouched, keep the audit
chain verifying, record the request in it by pseudonym, and put no raw member id in a span or a
log line. Another tenant's member is a 404 both ways.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from member_rights.wiring import open_member_rights
from services.audit.chain import ERASURE_PAYLOAD_TYPE, draft_from_event
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.common.envelope import decode, encode, wrap
from services.common.kafka import create_producer
from services.common.member_rights import (
    MemberRightsBackend,
    member_pseudonym,
    tenant_member_ref,
)
from services.common.members import member_key
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import (
    CreditExplanation,
    FeatureContribution,
)
from services.common.settings import InfraSettings
from services.common.topics import CleanupPolicy, TopicSpec, ensure_topics
from services.explanation.store import DecisionStore, StoredDecision
from services.feature_store.member_data import ACTIVITY_TABLES, FeastMemberData
from services.gateway.app import create_app
from services.gateway.clients import Backends
from services.gateway.security import issue_token
from services.gateway.settings import GatewaySettings
from services.outcomes.consumer import OutcomeFeed
from services.outcomes.store import OutcomesStore
from tests.integration.feast_projects import feast_project
from tests.unit.gateway.fakes import (
    FakeEvents,
    FakeExplanations,
    FakeReplayStore,
    FakeRevocations,
    FakeScoring,
)
from training import pipeline
from training.profiles import get_profile
from training.sources.synthetic import loan_book_from_world
from training.world import World, generate_world

pytestmark = pytest.mark.integration

KEY = b"member-rights-it-pseudonym-key-32b"
TENANT_A, TENANT_B = "sacco-a", "sacco-b"
PARTITIONS = 3


@pytest.fixture(scope="module")
def world(infra: InfraSettings) -> Iterator[World]:
    with feast_project("member_rights_test"):
        profile = get_profile("tiny")
        world = generate_world(profile.n_members, profile.seed)
        book = loan_book_from_world(world)
        book.meta["tenant"] = TENANT_A  # its members' features are tenant A's
        pipeline.load_into_feast(infra, book, echo=lambda _line: None)
        yield world


@dataclass
class Members:
    erased: str  # tenant A's member who asks to be erased
    kept: str  # tenant A's other member
    other: str  # tenant B's member


@dataclass
class Stores:
    backend: MemberRightsBackend
    audit: AuditStore  # the writer's (verify)
    audit_owner_pool: asyncpg.Pool
    decisions: DecisionStore
    app_id: str
    members: Members


def _events(app: str, member: str, tenant: str) -> list[Any]:
    decision_id = f"d-{app}"
    payloads = [
        LoanApplicationSubmitted(
            application_id=app,
            member_id=member,
            national_id_hash=f"nid-{member}",
            amount_kes=30_000.0,
            term_months=12,
            declared_monthly_income_kes=41_000.0,
            tenant_id=tenant,
        ),
        CreditDecision(
            decision_id=decision_id,
            application_id=app,
            member_id=member,
            score=610,
            band=DecisionBand.DECISION_BAND_REVIEW,
            features={"deposit_months": 18.0, "mm_inflow_sum_90d": 91_234.5},
            tenant_id=tenant,
        ),
        CreditExplanation(
            decision_id=decision_id,
            application_id=app,
            contributions=[FeatureContribution(feature="mm_inflow_sum_90d", value=91_234.5)],
            tenant_id=tenant,
        ),
    ]
    return [decode(encode(wrap(p, producer="test", subject=app))) for p in payloads]


async def _unused_send(_topic: str, _envelope: EventEnvelope) -> None:
    raise AssertionError("no loan matured here: nothing is published")


async def _faust_state(infra: InfraSettings, app_id: str, members: list[str]) -> None:
    """What the worker's tables hold for each member (by tenant-scoped key), written as Faust
    writes its changelog."""
    topics = [f"{app_id}-{t}-changelog" for t in ACTIVITY_TABLES]
    await ensure_topics(
        infra.kafka_bootstrap,
        [
            TopicSpec(t, PARTITIONS, 1, cleanup_policy=CleanupPolicy.COMPACT, consumed=False)
            for t in topics
        ],
    )
    producer = create_producer(infra, client_id="member-rights-test")
    await producer.start()
    try:
        for topic in topics:
            for member in members:
                state = {"member_id": member, "rows": [["tx-1", member, 1, "inflow", 5.0, 9.0]]}
                await producer.send_and_wait(
                    topic, key=member.encode(), value=json.dumps(state).encode()
                )
    finally:
        await producer.stop()


@pytest.fixture
async def stores(infra: InfraSettings, world: World, tmp_path: Path) -> AsyncIterator[Stores]:
    with feast_project("member_rights_test"):
        ids = list(world.members["member_id"].astype(str))
        members = Members(erased=ids[0], kept=ids[1], other=ids[2])
        suffix = uuid.uuid4().hex[:10]
        audit_settings = AuditSettings(
            infra=infra, db_schema=f"audit_mr_{suffix}", anchor_dir=tmp_path, metrics_port=0
        )
        owner_pool = await create_pool(
            infra.model_copy(update={"postgres_dsn": audit_settings.owner_dsn}), max_size=2
        )
        writer_pool = await create_pool(
            infra.model_copy(update={"postgres_dsn": audit_settings.writer_dsn}), max_size=2
        )
        owner = AuditStore(
            owner_pool, audit_settings.db_schema, mac_key=audit_settings.mac_key_bytes
        )
        await owner.migrate(writer=audit_settings.writer_user, readers=audit_settings.readers)
        writer = AuditStore(
            writer_pool, audit_settings.db_schema, mac_key=audit_settings.mac_key_bytes
        )
        shared = await create_pool(infra, max_size=2)
        decisions = DecisionStore(shared, f"explanation_mr_{suffix}")
        await decisions.create_schema()
        outcomes = OutcomesStore(  # the outcomes service's copy, filed by pseudonym
            shared, f"outcomes_mr_{suffix}", lambda t, m: tenant_member_ref(KEY, t, m)
        )
        await outcomes.create_schema()
        feed = OutcomeFeed(outcomes, _unused_send, "unused")
        app_id = f"fs-mr-{suffix}"
        drafts = []
        for n, (member, tenant) in enumerate(
            [(members.erased, TENANT_A), (members.kept, TENANT_A), (members.other, TENANT_B)]
        ):
            events = _events(f"app-{suffix}-{n}", member, tenant)
            drafts += [draft_from_event(e, "t") for e in events]
            await decisions.save_batch([StoredDecision(events[1].payload)], [events[2].payload])
            await feed.decision(events[1], None)  # type: ignore[arg-type]
        await feed.flush()
        await writer.append(drafts)
        await _faust_state(
            infra,
            app_id,
            [
                member_key(TENANT_A, members.erased),
                member_key(TENANT_A, members.kept),
                member_key(TENANT_B, members.other),
            ],
        )
        backend = await open_member_rights(
            infra,
            KEY,
            audit=audit_settings,
            explanation_schema=decisions.schema,
            feature_store_group=app_id,
            outcomes_schema=outcomes.s,
        )
        try:
            yield Stores(backend, writer, owner_pool, decisions, app_id, members)
        finally:
            await backend.close()
            await writer_pool.close()
            async with owner_pool.acquire() as conn:
                await conn.execute(f"DROP SCHEMA {audit_settings.db_schema} CASCADE")
            await owner_pool.close()
            async with shared.acquire() as conn:
                await conn.execute(f"DROP SCHEMA {decisions.schema} CASCADE")
                await conn.execute(f"DROP SCHEMA {outcomes.s} CASCADE")
            await shared.close()


def _client(stores: Stores) -> tuple[httpx.AsyncClient, GatewaySettings]:
    settings = GatewaySettings(
        jwt_secret=SecretStr("member-rights-it-jwt-secret-32-bytes-long"),
    )
    app = create_app(
        settings,
        backends=Backends(
            scoring=FakeScoring(),
            explanations=FakeExplanations(),
            events=FakeEvents(),
            replay=FakeReplayStore(),
            revocations=FakeRevocations(),
            members=stores.backend,
        ),
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ), settings


def _admin(settings: GatewaySettings, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, 'dpo', ['admin'], tenant=tenant)}"}


async def _online_key_exists(infra: InfraSettings, member: str) -> bool:
    with feast_project("member_rights_test"):
        key = FeastMemberData(infra)._redis_key(member)
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        return bool(await client.exists(key))
    finally:
        await client.aclose()


async def _changelog_latest(infra: InfraSettings, app_id: str, member: str) -> list[bytes | None]:
    """The last value of the member's key in each changelog partition it hashes to."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    out: list[bytes | None] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        for table in ACTIVITY_TABLES:
            topic = f"{app_id}-{table}-changelog"
            partition = DefaultPartitioner()(member.encode(), list(range(PARTITIONS)), [])
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            latest: bytes | None = b"<never written>"
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.key == member.encode():
                        latest = record.value
            out.append(latest)
    finally:
        await consumer.stop()
    return out


def _no_raw_id(member: str, spans: InMemorySpanExporter, records: list[logging.LogRecord]) -> None:
    """No span and no log line a service writes (ours at every level, any library's at INFO and
    above, what services run at; aiokafka's DEBUG wire dumps hold whole records) names it."""
    for span in spans.get_finished_spans():
        texts = [span.name, *(str(v) for v in (span.attributes or {}).values())]
        for event in span.events:
            texts += [str(v) for v in (event.attributes or {}).values()]
        assert not any(member in t for t in texts), f"raw member id in span {span.name}"
    checked = [r for r in records if r.name.startswith("services.") or r.levelno >= logging.INFO]
    assert checked, "nothing was logged"
    for record in checked:
        line = record.getMessage() + json.dumps(record.__dict__, default=str)
        assert member not in line, f"raw member id in a log line of {record.name}"


async def test_export_then_erase_a_member_everywhere(
    infra: InfraSettings,
    stores: Stores,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    spans.clear()
    m = stores.members
    client, settings = _client(stores)
    admin_a, admin_b = _admin(settings, TENANT_A), _admin(settings, TENANT_B)
    async with client:
        # Export: every store answers with the member's data.
        response = await client.post(
            "/v1/admin/members/export", json={"member_id": m.erased}, headers=admin_a
        )
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["member_ref"] == member_pseudonym(KEY, m.erased)
        s = document["stores"]
        assert [d["decision"]["member_id"] for d in s["decisions"]] == [m.erased]
        assert s["decisions"][0]["explanation"]["contributions"][0]["value"] == 91_234.5
        audit_types = [r["payload_type"].rsplit(".", 1)[-1] for r in s["audit"]]
        assert audit_types == ["LoanApplicationSubmitted", "CreditDecision", "CreditExplanation"]
        assert s["audit"][0]["payload"]["member_id"] == m.erased
        assert s["audit"][1]["payload"]["features"]["mm_inflow_sum_90d"] == 91_234.5
        assert s["feast"]["online"], "no online features exported"
        assert s["feast"]["offline"], "no offline rows exported"
        erased_key, kept_key = member_key(TENANT_A, m.erased), member_key(TENANT_A, m.kept)
        assert all(
            row["member_id"] == erased_key
            for rows in s["feast"]["offline"].values()
            for row in rows
        )
        assert len(s["faust_tables"]) == len(ACTIVITY_TABLES)
        assert [d["application_id"] for d in s["outcomes"]["decisions"]] == [
            d["decision"]["application_id"] for d in s["decisions"]
        ]

        # Tenant scoping: another tenant's member is a 404, both ways; bad ids a 422.
        for member, headers in ((m.erased, admin_b), (m.other, admin_a)):
            for route in ("export", "erasures"):
                answer = await client.post(
                    f"/v1/admin/members/{route}", json={"member_id": member}, headers=headers
                )
                assert answer.status_code == 404, (route, answer.text)
        bad = await client.post(
            "/v1/admin/members/export", json={"member_id": "../etc"}, headers=admin_a
        )
        assert bad.status_code == 422

        # Erase: a receipt with what each store erased, recorded in the chain.
        response = await client.post(
            "/v1/admin/members/erasures", json={"member_id": m.erased}, headers=admin_a
        )
        assert response.status_code == 200, response.text
        receipt = response.json()
        assert receipt["erased"]["decisions"] == 1
        assert receipt["erased"]["audit"] == 3
        assert receipt["erased"]["feast"] >= 2  # the online hash and offline rows
        assert receipt["erased"]["faust_tables"] == len(ACTIVITY_TABLES)
        assert receipt["erased"]["outcomes"] == 1  # the decision the outcomes service kept
        assert receipt["audit_seq"] is not None and receipt["kept"]

        # Nothing readable is left in any store.
        after = await client.post(
            "/v1/admin/members/export", json={"member_id": m.erased}, headers=admin_a
        )
        assert after.status_code == 200, after.text  # the erasure keeps it the tenant's
        left = after.json()["stores"]
        assert left["decisions"] == [] and left["faust_tables"] == {}
        assert all(rows == [] for rows in left["outcomes"].values())
        assert left["feast"] == {"online": {}, "offline": {}}
        assert [r["payload_type"] for r in left["audit"]] == [ERASURE_PAYLOAD_TYPE]

        # The other members are untouched.
        kept = await client.post(
            "/v1/admin/members/export", json={"member_id": m.kept}, headers=admin_a
        )
        ks = kept.json()["stores"]
        assert len(ks["decisions"]) == 1 and len(ks["audit"]) == 3
        assert ks["audit"][1]["payload"]["features"]["deposit_months"] == 18.0
        assert ks["feast"]["online"] and ks["feast"]["offline"]
        assert len(ks["faust_tables"]) == len(ACTIVITY_TABLES)
        assert len(ks["outcomes"]["decisions"]) == 1

        # Repeating the erasure is a receipt of zeros, recorded again.
        again = await client.post(
            "/v1/admin/members/erasures", json={"member_id": m.erased}, headers=admin_a
        )
        assert again.status_code == 200 and again.json()["erased"]["audit"] == 0

    # Straight from the stores, not through export.
    assert not await stores.decisions.holds_member(TENANT_A, m.erased)
    assert await stores.decisions.holds_member(TENANT_A, m.kept)
    assert not await _online_key_exists(infra, erased_key)
    assert await _online_key_exists(infra, kept_key)
    assert await _changelog_latest(infra, stores.app_id, erased_key) == [None, None]
    assert None not in await _changelog_latest(infra, stores.app_id, kept_key)
    with feast_project("member_rights_test"):
        schema = FeastMemberData(infra)._offline_schema()
    pool = await create_pool(infra, max_size=1)
    try:
        async with pool.acquire() as conn:
            offline = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.member_profile WHERE member_id = $1", erased_key
            )
            kept_offline = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.member_profile WHERE member_id = $1", kept_key
            )
    finally:
        await pool.close()
    assert (offline, kept_offline > 0) == (0, True)
    audit = stores.audit
    async with stores.audit_owner_pool.acquire() as conn:
        personal = await conn.fetchval(
            f"SELECT count(*) FROM {audit.schema}.personal_data WHERE member_id = $1", m.erased
        )
        leaks = await conn.fetchval(
            f"SELECT count(*) FROM {audit.events}"
            " WHERE strpos(payload, $1) > 0 OR subject = $1 OR strpos(payload, '91234.5') > 0",
            m.erased,
        )
        erasures = await conn.fetch(
            f"SELECT payload FROM {audit.events} WHERE payload_type = $1", ERASURE_PAYLOAD_TYPE
        )
    assert (personal, leaks) == (0, 0)
    recorded = json.loads(erasures[0]["payload"])
    assert recorded["member_ref"] == member_pseudonym(KEY, m.erased)
    assert recorded["tenant_id"] == TENANT_A and recorded["requested_by"] == "jwt:dpo"
    assert recorded["erased"]["feast"] == receipt["erased"]["feast"]
    assert len(erasures) == 2
    assert (await audit.verify()).ok

    _no_raw_id(m.erased, spans, caplog.records)
    logged = [
        getattr(r, "member_ref", None) for r in caplog.records if r.name.startswith("services")
    ]
    assert member_pseudonym(KEY, m.erased) in logged  # the routes did log, by pseudonym
