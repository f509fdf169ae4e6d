"""Redis and PostgreSQL round-trips through the shared library's clients."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.common.postgres import create_pool
from services.common.redis_store import create_redis
from services.common.settings import InfraSettings

pytestmark = pytest.mark.integration


async def test_redis_round_trip(infra: InfraSettings) -> None:
    client = create_redis(infra)
    key = f"test:{uuid.uuid4().hex}"
    try:
        assert await client.ping()
        await client.hset(key, mapping={"member_id": "m-1", "txn_count_30d": "12"})
        await client.expire(key, 60)
        assert await client.hgetall(key) == {b"member_id": b"m-1", b"txn_count_30d": b"12"}
        assert 0 < await client.ttl(key) <= 60
    finally:
        await client.delete(key)
        await client.aclose()


async def test_postgres_round_trip(infra: InfraSettings) -> None:
    pool = await create_pool(infra, max_size=2)
    table = f"test_{uuid.uuid4().hex[:12]}"
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                f"CREATE TABLE {table} (event_id text PRIMARY KEY, body jsonb NOT NULL)"
            )
            await conn.execute(
                f"INSERT INTO {table} VALUES ($1, $2) ON CONFLICT DO NOTHING", "e-1", '{"a": 1}'
            )
            # the same event twice stays one row: the idempotent insert the audit log relies on
            await conn.execute(
                f"INSERT INTO {table} VALUES ($1, $2) ON CONFLICT DO NOTHING", "e-1", '{"a": 2}'
            )
            rows = await conn.fetch(f"SELECT event_id, body->>'a' AS a FROM {table}")
            assert [(r["event_id"], r["a"]) for r in rows] == [("e-1", "1")]
            assert await conn.fetchval("SELECT current_database()") == "alama"
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await pool.close()


async def _stored_compression(pool: object, value: str) -> tuple[str, str | None]:
    """Store `value` in a temporary table through the pool, after a borrower's RESET ALL;
    (the session's default, how PostgreSQL compressed the stored value)."""
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        await conn.execute("SET application_name = 'borrowed'")  # reset on release
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE squeeze (v text) ON COMMIT DROP")
            await conn.execute("INSERT INTO squeeze VALUES ($1)", value)
            method = await conn.fetchval("SELECT pg_column_compression(v) FROM squeeze")
        default = await conn.fetchval("SHOW default_toast_compression")
    return default, method


async def test_large_values_are_compressed_with_lz4(infra: InfraSettings) -> None:
    """pglz spent half an audit row's server CPU; the pool's sessions use lz4, also after the
    pool resets a session between borrowers."""
    pool = await create_pool(infra, max_size=1)
    try:
        value = "decision features " * 1000  # 18 KB, compressible
        assert await _stored_compression(pool, value) == ("lz4", "lz4")
    finally:
        await pool.close()


async def test_an_unknown_compression_keeps_the_servers_default(infra: InfraSettings) -> None:
    pool = await create_pool(
        infra.model_copy(update={"postgres_toast_compression": "zstd"}), max_size=1
    )
    plain = await asyncpg.connect(infra.postgres_dsn)
    try:
        servers = await plain.fetchval("SHOW default_toast_compression")
        default, method = await _stored_compression(pool, "x" * 20_000)
        assert default == method == servers != "zstd"
    finally:
        await plain.close()
        await pool.close()
