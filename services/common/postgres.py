"""The asyncpg connection pool every PostgreSQL-backed service uses."""

from __future__ import annotations

import asyncpg

from services.common.settings import InfraSettings


async def create_pool(
    infra: InfraSettings, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn=infra.postgres_dsn, min_size=min_size, max_size=max_size, command_timeout=30
    )
    if pool is None:  # asyncpg types allow it; a created pool never is
        raise RuntimeError("asyncpg returned no pool")
    return pool
