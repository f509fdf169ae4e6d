"""The asyncpg connection pool every PostgreSQL-backed service uses."""

from __future__ import annotations

import logging
import re

import asyncpg

from services.common.settings import InfraSettings

log = logging.getLogger(__name__)


async def create_pool(
    infra: InfraSettings, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose sessions compress large values as `postgres_toast_compression` says.

    PostgreSQL's default, pglz, tries to compress every value over about 2 KB and gives up on
    most of ours (hashes, binary floats) after spending the CPU: half of what an audit row cost
    the server. It is a session default set at connection start (`server_settings`), so it
    outlives the pool's `RESET ALL` between borrowers; a server built without the method refuses
    the connection, and the pool is then made with the server's own default.
    """
    method = infra.postgres_toast_compression
    settings = {} if method == "server" else {"default_toast_compression": method}
    try:
        pool = await _pool(infra, min_size, max_size, settings)
    except asyncpg.InvalidParameterValueError as exc:
        log.warning(
            "PostgreSQL does not offer this TOAST compression; using the server's default",
            extra={"compression": method, "error": str(exc)},
        )
        pool = await _pool(infra, min_size, max_size, {})
    return pool


async def _pool(
    infra: InfraSettings, min_size: int, max_size: int, server_settings: dict[str, str]
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn=infra.postgres_dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        server_settings=server_settings,
    )
    if pool is None:  # asyncpg types allow it; a created pool never is
        raise RuntimeError("asyncpg returned no pool")
    return pool


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def is_sql_identifier(name: str) -> bool:
    """A lower-case PostgreSQL identifier (schema, role) safe to put in SQL text unquoted."""
    return _IDENTIFIER.fullmatch(name) is not None
