"""Stored decisions belong to their tenant: another tenant asking for one by id (or for its
application's latest decision, or its explanation) finds nothing, exactly as for an id that
does not exist, and two tenants may use the same application id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.settings import InfraSettings
from services.explanation.store import DecisionStore, StoredDecision


def _decision(decision_id: str, application_id: str, tenant: str) -> CreditDecision:
    decision = CreditDecision(
        decision_id=decision_id,
        application_id=application_id,
        member_id="M1",
        tenant_id=tenant,
        model_version="v1",
        score=600,
    )
    decision.decided_at.FromDatetime(datetime.now(UTC))
    return decision


@pytest.fixture
async def store(infra: InfraSettings) -> AsyncIterator[DecisionStore]:
    schema = f"tenants_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(infra)
    store = DecisionStore(pool, schema)
    await store.create_schema()
    try:
        yield store
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


async def test_another_tenants_decision_is_not_found(store: DecisionStore) -> None:
    mine, theirs = _decision("d-1", "A-1", "sacco-a"), _decision("d-2", "A-1", "sacco-b")
    await store.save_decisions([StoredDecision(mine), StoredDecision(theirs)])
    explanation = CreditExplanation(decision_id="d-1", application_id="A-1", tenant_id="sacco-a")
    explanation.explained_at.FromDatetime(datetime.now(UTC))
    await store.save_explanation(explanation)

    assert await store.decision("d-1", "sacco-a") == mine
    assert await store.decision("d-1", "sacco-b") is None
    assert await store.decision("d-404", "sacco-a") is None
    assert await store.latest_decision("A-1", "sacco-a") == mine
    assert await store.latest_decision("A-1", "sacco-b") == theirs
    assert await store.explanation("d-1", "sacco-b") is None
    assert (await store.explanation("d-1", "sacco-a")) == explanation
    assert await store.decision("d-2") == theirs  # internal callers see every tenant's


async def test_a_schema_from_before_tenants_gains_the_column(
    store: DecisionStore, infra: InfraSettings
) -> None:
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        await conn.execute(f"ALTER TABLE {store.schema}.decisions DROP COLUMN tenant_id CASCADE")
    finally:
        await conn.close()
    await store.create_schema()
    await store.save_decisions([StoredDecision(_decision("d-9", "A-9", "sacco-a"))])
    assert await store.decision("d-9", "sacco-a") is not None
