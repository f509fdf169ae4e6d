"""The audit tables in PostgreSQL and every query on them (asyncpg).

Appends take a transaction-scoped advisory lock and read the chain head inside it, so concurrent
writers (several consumer instances) still build one linear chain. A trigger makes the events
table append-only; only retention may delete, by setting a transaction-local flag the trigger
honours. Personal data lives in its own table keyed by event id, which erasure deletes.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.audit.chain import (
    ERASURE_PAYLOAD_TYPE,
    ERASURE_TOPIC,
    Anchor,
    ChainRow,
    ChainVerifier,
    EntryDraft,
    VerifyResult,
    draft_from_payload,
    seal_all,
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAINTENANCE_FLAG = "alama.audit_maintenance"

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    topic text NOT NULL,
    payload_type text NOT NULL,
    producer text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    application_id text NOT NULL,
    subject text NOT NULL,
    payload text NOT NULL,
    payload_doc jsonb GENERATED ALWAYS AS (payload::jsonb) STORED,
    trace_id text NOT NULL,
    personal_commitment text NOT NULL,
    prev_hash text NOT NULL,
    row_hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS events_application_id ON {s}.events (application_id);
CREATE INDEX IF NOT EXISTS events_recorded_at ON {s}.events (recorded_at);
CREATE TABLE IF NOT EXISTS {s}.personal_data (
    event_id text PRIMARY KEY,
    member_id text NOT NULL,
    salt text NOT NULL,
    fields jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS personal_data_member_id ON {s}.personal_data (member_id);
CREATE TABLE IF NOT EXISTS {s}.anchor (
    id int PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    row_hash text NOT NULL,
    pruned_at timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION {s}.events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('{flag}', true) = 'retention' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER IF EXISTS events_append_only ON {s}.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {s}.events
    FOR EACH ROW EXECUTE FUNCTION {s}.events_append_only();
DROP TRIGGER IF EXISTS events_no_truncate ON {s}.events;
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.events_append_only();
"""

ROW_COLUMNS = (
    "seq, event_id, topic, payload_type, producer, occurred_at, recorded_at, application_id,"
    " subject, payload, trace_id, personal_commitment, prev_hash, row_hash"
)

# Lookup order: the life of an application, then arrival order.
STAGE_ORDER = (
    "alama.events.v1.LoanApplicationSubmitted",
    "alama.events.v1.CreditDecision",
    "alama.events.v1.CreditExplanation",
    "alama.events.v1.ReviewOutcome",
)


@dataclass(frozen=True)
class AppendResult:
    appended: int
    duplicates: int


@dataclass(frozen=True)
class ErasureResult:
    events_erased: int
    erasure_seq: int | None


@dataclass(frozen=True)
class RetentionResult:
    rows_pruned: int
    anchor: Anchor


@dataclass(frozen=True)
class AuditRecord:
    """A row as lookup returns it, with personal values while they are not erased."""

    row: ChainRow
    personal: dict[str, str] | None


def _row(record: asyncpg.Record) -> ChainRow:
    return ChainRow(**{key: record[key] for key in ROW_COLUMNS.replace(" ", "").split(",")})


class AuditStore:
    """The audit log in one PostgreSQL schema (tests use a fresh schema each run)."""

    def __init__(self, pool: asyncpg.Pool, schema: str = "audit") -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.pool = pool
        self.schema = schema
        # One lock per schema, so separate audit logs do not wait on each other.
        self.lock_key = zlib.crc32(f"alama-audit:{schema}".encode())

    @property
    def events(self) -> str:
        return f"{self.schema}.events"

    async def create_schema(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            await conn.execute(SCHEMA_SQL.format(s=self.schema, flag=MAINTENANCE_FLAG))

    async def _head(self, conn: asyncpg.Connection) -> Anchor:
        last = await conn.fetchrow(
            f"SELECT seq, row_hash FROM {self.events} ORDER BY seq DESC LIMIT 1"
        )
        if last is not None:
            return Anchor(last["seq"], last["row_hash"])
        return await self._anchor(conn)

    async def _anchor(self, conn: asyncpg.Connection) -> Anchor:
        anchor = await conn.fetchrow(f"SELECT seq, row_hash FROM {self.schema}.anchor WHERE id = 1")
        return Anchor(anchor["seq"], anchor["row_hash"]) if anchor else Anchor()

    async def append(self, drafts: Sequence[EntryDraft]) -> AppendResult:
        """Append drafts in one transaction; event ids already stored (or repeated) are skipped."""
        unique: dict[str, EntryDraft] = {}
        for draft in drafts:
            unique.setdefault(draft.event_id, draft)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self._append(conn, list(unique.values()))
        return AppendResult(appended=len(rows), duplicates=len(drafts) - len(rows))

    async def _append(self, conn: asyncpg.Connection, drafts: list[EntryDraft]) -> list[ChainRow]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
        stored = {
            r["event_id"]
            for r in await conn.fetch(
                f"SELECT event_id FROM {self.events} WHERE event_id = ANY($1::text[])",
                [d.event_id for d in drafts],
            )
        }
        fresh = [d for d in drafts if d.event_id not in stored]
        rows = seal_all(fresh, after=await self._head(conn), recorded_at=datetime.now(UTC))
        if rows:
            await conn.executemany(
                f"INSERT INTO {self.events} ({ROW_COLUMNS}) VALUES"
                " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
                " ON CONFLICT (event_id) DO NOTHING",
                [
                    (
                        r.seq, r.event_id, r.topic, r.payload_type, r.producer, r.occurred_at,
                        r.recorded_at, r.application_id, r.subject, r.payload, r.trace_id,
                        r.personal_commitment, r.prev_hash, r.row_hash,
                    )
                    for r in rows
                ],
            )  # fmt: skip
            personal = [(d.event_id, d.personal) for d in fresh if d.personal is not None]
            if personal:
                await conn.executemany(
                    f"INSERT INTO {self.schema}.personal_data (event_id, member_id, salt, fields)"
                    " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (event_id) DO NOTHING",
                    [
                        (event_id, p.member_id, p.salt, json.dumps(dict(p.fields)))
                        for event_id, p in personal
                        if p is not None
                    ],
                )
        return rows

    async def count(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {self.events}"))

    async def verify(self, batch: int = 1000) -> VerifyResult:
        """Recompute every hash from the anchor on, in seq order, in one snapshot."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            verifier = ChainVerifier(await self._anchor(conn))
            cursor = conn.cursor(
                f"SELECT {ROW_COLUMNS} FROM {self.events} ORDER BY seq", prefetch=batch
            )
            async for record in cursor:
                if not verifier.check(_row(record)):
                    break
            return verifier.result()

    async def lookup(self, application_id: str) -> list[AuditRecord]:
        """Every row about an application: submission, decision, explanation, review."""
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                f"SELECT {', '.join('e.' + c.strip() for c in ROW_COLUMNS.split(','))},"
                f" p.fields FROM {self.events} e"
                f" LEFT JOIN {self.schema}.personal_data p USING (event_id)"
                " WHERE e.application_id = $1"
                " ORDER BY coalesce(array_position($2::text[], e.payload_type), 99), e.seq",
                application_id,
                list(STAGE_ORDER),
            )
        return [
            AuditRecord(_row(r), json.loads(r["fields"]) if r["fields"] is not None else None)
            for r in records
        ]

    async def erase_member(self, member_id: str, *, requested_by: str = "audit") -> ErasureResult:
        """Delete a member's personal data (unlinking the commitments) and record the erasure."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            erased = await conn.fetch(
                f"DELETE FROM {self.schema}.personal_data WHERE member_id = $1 RETURNING event_id",
                member_id,
            )
            if not erased:
                return ErasureResult(0, None)
            event_ids = sorted(r["event_id"] for r in erased)
            record = draft_from_payload(
                event_id=f"erasure-{uuid.uuid4()}",
                topic=ERASURE_TOPIC,
                payload_type=ERASURE_PAYLOAD_TYPE,
                producer=requested_by,
                occurred_at=datetime.now(UTC),
                subject="",
                payload={"erased_event_ids": event_ids, "law": "Kenya Data Protection Act 2019"},
            )
            rows = await self._append(conn, [record])
        return ErasureResult(len(event_ids), rows[0].seq)

    async def prune(self, older_than: datetime) -> RetentionResult:
        """Delete rows recorded before `older_than` from the start of the chain; keep an anchor."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            last = await conn.fetchrow(
                f"SELECT seq, row_hash FROM {self.events} WHERE recorded_at < $1"
                " ORDER BY seq DESC LIMIT 1",
                older_than,
            )
            if last is None:
                return RetentionResult(0, await self._anchor(conn))
            anchor = Anchor(last["seq"], last["row_hash"])
            await conn.execute(f"SELECT set_config('{MAINTENANCE_FLAG}', 'retention', true)")
            await conn.execute(
                f"DELETE FROM {self.schema}.personal_data WHERE event_id IN"
                f" (SELECT event_id FROM {self.events} WHERE seq <= $1)",
                anchor.seq,
            )
            status = await conn.execute(f"DELETE FROM {self.events} WHERE seq <= $1", anchor.seq)
            await conn.execute(
                f"INSERT INTO {self.schema}.anchor (id, seq, row_hash, pruned_at)"
                " VALUES (1, $1, $2, now()) ON CONFLICT (id) DO UPDATE"
                " SET seq = EXCLUDED.seq, row_hash = EXCLUDED.row_hash, pruned_at = now()",
                anchor.seq,
                anchor.row_hash,
            )
            await conn.execute(f"SELECT set_config('{MAINTENANCE_FLAG}', '', true)")
        return RetentionResult(int(status.split()[-1]), anchor)


def personal_fields(record: AuditRecord) -> dict[str, Any]:
    """The payload as it was published, while the member's data is not erased."""
    payload: dict[str, Any] = json.loads(record.row.payload)
    return payload | (record.personal or {})
