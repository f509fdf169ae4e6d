"""Writes of pushed feature rows to Feast's PostgreSQL offline store, so training and retraining
read streamed rows point-in-time exactly like the snapshots training loads.

Feast 0.67's PostgreSQL offline store has no ``offline_write_batch``, so a push with
``PushMode.ONLINE_AND_OFFLINE`` fails; this writes the same rows into the table behind each push
source's batch source (the table its ``SELECT * FROM schema.table`` reads, found in the Feast
registry, never listed here), with the columns and types training's loader gives it.

Idempotent: every write also records its rows' keys in ``<table>_streamed`` (member_id,
event_timestamp, written_at; primary key on the first two), in one statement, and a row whose
key is already there is not written again: a replayed or retried batch adds nothing. The same
journal tells training's reload (`training.feature_tables`) which rows the stream wrote, so a
reload, which replaces the table with a fresh one, carries them into it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import asyncpg
import numpy as np
import pandas as pd

from services.common.postgres import create_pool, is_sql_identifier
from services.common.settings import InfraSettings
from services.feature_store.feature_rows import SEQUENCE_COLUMNS

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.data_source import DataSource

#: Suffix of the journal of streamed keys beside each offline table.
JOURNAL_SUFFIX = "_streamed"
_SELECT_ALL = re.compile(
    r"\s*select\s+\*\s+from\s+(?:([a-z_][a-z0-9_]*)\.)?([a-z_][a-z0-9_]*)\s*;?\s*", re.IGNORECASE
)


class OfflinePushUnsupported(RuntimeError):
    """The configured offline store, or a push source's batch source, cannot take pushed rows."""


class OfflineWriter(Protocol):
    async def write(self, push_source: str, rows: pd.DataFrame) -> int:
        """Write the rows not written before; returns how many were new. Raises on failure."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class OfflineTable:
    """A push source's offline table and the journal of the keys the stream wrote into it."""

    schema: str
    name: str

    def __post_init__(self) -> None:
        for part in (self.schema, self.name + JOURNAL_SUFFIX):
            if not is_sql_identifier(part):
                raise OfflinePushUnsupported(f"{part!r} is not a plain PostgreSQL identifier")

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def journal(self) -> str:
        return f"{self.schema}.{self.name}{JOURNAL_SUFFIX}"

    @property
    def staging(self) -> str:
        """A temporary table per connection (in pg_temp: no schema), emptied at each commit."""
        return f"{self.name}_stage"


def offline_table(store: FeatureStore, push_source: str) -> OfflineTable:
    """The table behind a push source's batch source, as the Feast registry holds it."""
    source = store.get_data_source(push_source)
    batch = getattr(source, "batch_source", None)
    if batch is None:
        raise OfflinePushUnsupported(f"{push_source} is not a push source")
    return batch_table(batch, str(store.config.offline_store.db_schema or "public"))


def batch_table(batch: DataSource, default_schema: str) -> OfflineTable:
    """The one table a PostgreSQL batch source reads: its `table`, or the table of a
    ``SELECT * FROM [schema.]table`` query (the repo's sources); anything else is refused."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    if not isinstance(batch, PostgreSQLSource):
        raise OfflinePushUnsupported(f"{batch.name}: not a PostgreSQL source")
    options = batch._postgres_options  # Feast keeps the table and query only here
    if options._table:
        schema, _, name = options._table.rpartition(".")
        return OfflineTable(schema or default_schema, name)
    match = _SELECT_ALL.fullmatch(options._query)
    if match is None:
        raise OfflinePushUnsupported(
            f"{batch.name}: its query reads not one table: {options._query!r}"
        )
    return OfflineTable(match.group(1) or default_schema, match.group(2))


def require_postgres(store: FeatureStore) -> None:
    """Refuse a store whose offline store is not PostgreSQL: this writer knows only that one."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
        PostgreSQLOfflineStoreConfig,
    )

    if not isinstance(store.config.offline_store, PostgreSQLOfflineStoreConfig):
        raise OfflinePushUnsupported(
            f"the {store.config.offline_store.type} offline store is not PostgreSQL;"
            " set ALAMA_FEATURE_STORE_PUSH_TARGET=online"
        )


def column_types(columns: Sequence[str]) -> dict[str, str]:
    """PostgreSQL types of feature-row columns, the layout training's loader writes: the member
    key as text, the as-of as timestamptz, a sequence feature as an array, the rest as floats."""
    out = {}
    for name in columns:
        if name == "member_id":
            out[name] = "text"
        elif name == "event_timestamp":
            out[name] = "timestamptz"
        elif name in SEQUENCE_COLUMNS:
            out[name] = "double precision[]"
        else:
            out[name] = "double precision"
    return out


def records(rows: pd.DataFrame) -> list[tuple[object, ...]]:
    """The rows as asyncpg COPY takes them (times as datetimes, sequences as lists of floats)."""
    columns: list[list[object]] = []
    for name, kind in column_types(list(rows.columns)).items():
        values = rows[name]
        if kind == "text":
            columns.append(values.astype(str).tolist())
        elif kind == "timestamptz":
            stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
            columns.append(list(stamps.to_pydatetime()))
        elif kind.endswith("[]"):  # feature rows already hold lists of floats
            columns.append(
                [v if type(v) is list else np.asarray(v, dtype=np.float64).tolist() for v in values]
            )
        else:
            columns.append(values.astype(np.float64).tolist())
    return list(zip(*columns, strict=True))


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


class PostgresOfflineWriter:
    """Rows into the offline tables through a per-connection staging table, at most once each."""

    def __init__(self, infra: InfraSettings, store: FeatureStore, pool_size: int = 2) -> None:
        require_postgres(store)
        self.infra = infra
        self.store = store
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._tables: dict[str, OfflineTable] = {}
        self._ready: set[OfflineTable] = set()

    async def table(self, push_source: str) -> OfflineTable:
        """The push source's table, looked up in the registry once (in a thread: it blocks)."""
        found = self._tables.get(push_source)
        if found is None:
            found = await asyncio.to_thread(offline_table, self.store, push_source)
            self._tables[push_source] = found
        return found

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await create_pool(self.infra, max_size=self.pool_size)
        return self._pool

    async def write(self, push_source: str, rows: pd.DataFrame) -> int:
        if rows.empty:
            return 0
        table = await self.table(push_source)
        types = column_types(list(rows.columns))
        pool = await self._connections()
        async with pool.acquire() as conn:
            try:
                if table not in self._ready:
                    await _ensure_tables(conn, table, types)
                    self._ready.add(table)
                return await _insert_new(conn, table, types, records(rows))
            except asyncpg.UndefinedTableError:
                self._ready.discard(table)  # dropped under us: recreated on the retry
                raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _ensure_tables(
    conn: asyncpg.Connection, table: OfflineTable, types: dict[str, str]
) -> None:
    """The journal, and the offline table when training has not loaded one yet (its layout and
    member/time index, as training's loader makes them), created once, under a lock so that
    two workers starting together do not race on the catalogue."""
    columns = ", ".join(f'"{c}" {t}' for c, t in types.items())
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", table.journal)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {table.table} ({columns})")
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS {table.name}_member_id_event_timestamp_idx"
            f" ON {table.table} (member_id, event_timestamp)"
        )
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table.journal} ("
            " member_id text NOT NULL, event_timestamp timestamptz NOT NULL,"
            " written_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (member_id, event_timestamp))"
        )


async def _insert_new(
    conn: asyncpg.Connection,
    table: OfflineTable,
    types: dict[str, str],
    rows: list[tuple[object, ...]],
) -> int:
    """COPY into the staging table, then one statement: the keys the journal lacks go into it
    and their rows into the offline table. Being one statement, it locks both tables only when
    it runs, so training's swap (which locks the old table first) never deadlocks with it, and a
    write that waited for a swap re-resolves the table's name and writes into the new one."""
    columns = list(types)
    listed = _quoted(columns)
    staging_columns = ", ".join(f'"{c}" {t}' for c, t in types.items())
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {table.staging} ({staging_columns})"
            " ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(table.staging, records=rows, columns=columns)
        status = await conn.execute(
            f"WITH staged AS ("
            f" SELECT DISTINCT ON (member_id, event_timestamp) {listed} FROM {table.staging}),"
            f" fresh AS ("
            f" INSERT INTO {table.journal} (member_id, event_timestamp)"
            f" SELECT member_id, event_timestamp FROM staged"
            f" ON CONFLICT DO NOTHING RETURNING member_id, event_timestamp)"
            f" INSERT INTO {table.table} ({listed})"
            f" SELECT {', '.join(f's.{c}' for c in listed.split(', '))}"
            f" FROM staged s JOIN fresh USING (member_id, event_timestamp)"
        )
    return int(status.split()[-1])
