"""The asyncpg connection pool every PostgreSQL-backed service uses."""

from __future__ import annotations

import re

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


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def is_sql_identifier(name: str) -> bool:
    """A lower-case PostgreSQL identifier (schema, role) safe to put in SQL text unquoted."""
    return _IDENTIFIER.fullmatch(name) is not None
