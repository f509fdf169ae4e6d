"""The audit tables in PostgreSQL and every query on them (asyncpg).

Two roles touch the tables. The owner (`migrate`, retention, erasure) creates and changes them;
the service appends as a writer that may only INSERT and SELECT, so it can neither rewrite rows
nor switch off the trigger that keeps them append-only. Whoever holds the owner login can still do
anything to the tables; what it cannot do is seal a row (the MAC key is not in the database) or
reach the anchors outside it, and that is what `verify` checks.

Appends take a transaction-scoped advisory lock and read the chain head inside it, so concurrent
writers (several consumer instances) still build one linear chain. The trigger lets a row be
deleted only under a sealed retention event in the chain that covers it; personal data lives in
its own table keyed by event id, which erasure deletes.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.audit.chain import (
    ADOPTION_PAYLOAD_TYPE,
    ERASURE_PAYLOAD_TYPE,
    ERASURE_TOPIC,
    MAINTENANCE_PAYLOAD_TYPES,
    MIGRATION_TOPIC,
    REGISTRY_PAYLOAD_TYPE,
    RETENTION_PAYLOAD_TYPE,
    RETENTION_TOPIC,
    ChainHead,
    ChainRow,
    ChainVerifier,
    EntryDraft,
    VerifyResult,
    adoption_payload,
    canonical_time,
    draft_from_payload,
    mac_matches,
    retention_payload,
    row_mac,
    seal_all,
)
from services.common.postgres import is_sql_identifier

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
    row_hash text NOT NULL,
    row_mac text NOT NULL DEFAULT ''
);
ALTER TABLE {s}.events ADD COLUMN IF NOT EXISTS row_mac text NOT NULL DEFAULT '';
-- pattern ops: the readers' "applications whose id starts with" (a demo's or bench's run) is an
-- index range under any collation, not a scan of the whole chain; equality uses it too. The
-- plain index it replaces could not serve LIKE outside the C collation (one progress poll of the
-- bench read 3.5 million rows, 1.4 s of three processes' CPU)
CREATE INDEX IF NOT EXISTS events_application_prefix ON {s}.events
    (application_id text_pattern_ops);
DROP INDEX IF EXISTS {s}.events_application_id;
CREATE INDEX IF NOT EXISTS events_recorded_at ON {s}.events (recorded_at);
CREATE INDEX IF NOT EXISTS events_maintenance ON {s}.events (seq)
    WHERE payload_type IN ({maintenance});
CREATE INDEX IF NOT EXISTS events_registry ON {s}.events (seq)
    WHERE payload_type = '{registry}';
CREATE TABLE IF NOT EXISTS {s}.personal_data (
    event_id text PRIMARY KEY,
    member_id text NOT NULL,
    salt text NOT NULL,
    fields jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS personal_data_member_id ON {s}.personal_data (member_id);
CREATE OR REPLACE FUNCTION {s}.events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A row may go only under a retention event in the chain that covers it: an event whose
    -- cut-off it predates and that kept its own minimum age. Sealing is checked by `verify`.
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM {s}.events r
        WHERE r.payload_type = '{retention}'
          AND (r.payload_doc->>'through_seq')::bigint >= OLD.seq
          AND r.seq > OLD.seq
          AND OLD.recorded_at < (r.payload_doc->>'cutoff')::timestamptz
          AND (r.payload_doc->>'min_age_days')::int >= 1
          AND (r.payload_doc->>'cutoff')::timestamptz
              <= r.recorded_at - make_interval(days => (r.payload_doc->>'min_age_days')::int)
    ) THEN
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
REVOKE ALL ON SCHEMA {s} FROM PUBLIC;
REVOKE ALL ON {s}.events, {s}.personal_data FROM PUBLIC;
"""

GRANTS_SQL = """
REVOKE ALL ON {s}.events, {s}.personal_data FROM {role};
GRANT USAGE ON SCHEMA {s} TO {role};
"""

EVENT_COLUMNS = (
    "seq", "event_id", "topic", "payload_type", "producer", "occurred_at", "recorded_at",
    "application_id", "subject", "payload", "trace_id", "personal_commitment", "prev_hash",
    "row_hash", "row_mac",
)  # fmt: skip
ROW_COLUMNS = ", ".join(EVENT_COLUMNS)

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
    through: ChainHead  # the last pruned row (the chain now starts after it)
    event_seq: int | None  # where the retention event sits; None when nothing was old enough


class MigrationError(RuntimeError):
    """The schema cannot be brought to the shape the service needs; the message says why."""


class ChainTampered(RuntimeError):
    """The chain's head is not sealed: appending after it would bury the evidence."""


class RetentionRefused(ValueError):
    """A retention request that would prune rows younger than the minimum age."""


def checked_schema(schema: str) -> str:
    """`schema` if it is a plain lower-case identifier (it is spliced into SQL), else ValueError."""
    if not is_sql_identifier(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CheckedRecord:
    """One record of an application's trail and what the verifier found for it."""

    row: ChainRow
    problem: str  # '' when it recomputes, links to the stored row before it and is sealed
    next_problem: str  # '' when the next stored row links to it (or there is none)

    @property
    def verified(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class Trail:
    """An application's records, each checked with its neighbours, and how far the chain
    before them was verified in the same snapshot."""

    records: list[CheckedRecord]
    start_seq: int  # the first stored row
    head_seq: int  # the last stored row
    chain: VerifyResult  # rows after `resumed_from` (or from the start) through `chain.head`
    resumed_from: ChainHead | None  # None: verified from the chain's start
    complete: bool  # the verification reached the application's last record (or broke)


@dataclass(frozen=True)
class AuditRecord:
    """A row as lookup returns it, with personal values while they are not erased."""

    row: ChainRow
    personal: dict[str, str] | None


def _row(record: asyncpg.Record) -> ChainRow:
    return ChainRow(**{key: record[key] for key in EVENT_COLUMNS})


class AuditStore:
    """The audit log in one PostgreSQL schema (tests use a fresh schema each run).

    The pool's login decides what the store may do: the writer's appends, looks up and verifies;
    the owner's also migrates, applies retention and erases.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        mac_key: bytes,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        checked_schema(schema)
        if not mac_key:
            raise ValueError("the audit MAC key is empty")
        self.pool = pool
        self.schema = schema
        self.mac_key = mac_key
        self.clock = clock
        # One lock per schema, so separate audit logs do not wait on each other.
        self.lock_key = zlib.crc32(f"alama-audit:{schema}".encode())

    @property
    def events(self) -> str:
        return f"{self.schema}.events"

    async def migrate(self, *, writer: str, readers: Collection[str] = ()) -> int | None:
        """Create or upgrade the schema as its owner and grant the writer INSERT and SELECT.

        A chain written before rows were sealed is adopted once, by a sealed event that vouches
        for its rows as they are now (their hashes still chain). Returns that event's seq.
        """
        for role in (writer, *readers):
            if not is_sql_identifier(role):
                raise MigrationError(f"invalid role name {role!r}")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            me = await conn.fetchval("SELECT current_user")
            if writer == me:
                raise MigrationError(
                    f"the writer role {writer!r} is the owner: the service must not own its tables"
                )
            owner = await conn.fetchval(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1",
                self.schema,
            )
            if owner is not None and owner != me:
                raise MigrationError(
                    f"schema {self.schema!r} is owned by {owner!r}, not {me!r}; a superuser hands"
                    f" it over (ALTER SCHEMA/TABLE ... OWNER TO {me}; infra/local.py does this)"
                )
            existing = {
                r["rolname"]
                for r in await conn.fetch(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])",
                    [writer, *readers],
                )
            }
            if writer not in existing:
                raise MigrationError(f"the writer role {writer!r} does not exist")
            if await conn.fetchval("SELECT pg_has_role($1, current_user, 'MEMBER')", writer):
                raise MigrationError(
                    f"the writer role {writer!r} is a member of the owner {me!r}: it would hold"
                    " the owner's rights over the chain"
                )
            unsealed_table = await conn.fetchval(
                "SELECT to_regclass($1) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
                " information_schema.columns WHERE table_schema = $2 AND table_name = 'events'"
                " AND column_name = 'row_mac')",
                self.events,
                self.schema,
            )
            maintenance = ", ".join(f"'{t}'" for t in MAINTENANCE_PAYLOAD_TYPES)
            await conn.execute(
                SCHEMA_SQL.format(
                    s=self.schema,
                    retention=RETENTION_PAYLOAD_TYPE,
                    maintenance=maintenance,
                    registry=REGISTRY_PAYLOAD_TYPE,
                )
            )
            await conn.execute(GRANTS_SQL.format(s=self.schema, role=writer))
            await conn.execute(
                f"GRANT SELECT, INSERT ON {self.events}, {self.schema}.personal_data TO {writer}"
            )
            for reader in sorted(set(readers) & existing - {me, writer}):
                await conn.execute(GRANTS_SQL.format(s=self.schema, role=reader))
                await conn.execute(f"GRANT SELECT ON {self.events} TO {reader}")
            if unsealed_table:
                return await self._adopt_unsealed(conn)
        return None

    async def _adopt_unsealed(self, conn: asyncpg.Connection) -> int | None:
        """Vouch, in one sealed event, for rows written before sealing existed."""
        first = await conn.fetchrow(
            f"SELECT seq, prev_hash FROM {self.events} ORDER BY seq LIMIT 1"
        )
        if first is None:
            return None
        start = ChainHead(first["seq"] - 1, first["prev_hash"])
        verifier = ChainVerifier(self.mac_key, unsealed_from=start)
        async for record in conn.cursor(f"SELECT {ROW_COLUMNS} FROM {self.events} ORDER BY seq"):
            if not verifier.check(_row(record)):
                broken = verifier.result()
                raise MigrationError(
                    f"the unsealed chain is already broken at seq {broken.first_broken_seq}"
                    f" ({broken.reason}); refusing to vouch for it"
                )
        through = verifier.result().head
        record = draft_from_payload(
            event_id=f"adoption-{uuid.uuid4()}",
            topic=MIGRATION_TOPIC,
            payload_type=ADOPTION_PAYLOAD_TYPE,
            producer="audit-migrate",
            occurred_at=self.clock(),
            subject="",
            payload=adoption_payload(start=start, through=through),
        )
        rows = await self._append(conn, [record], after=through)
        await conn.execute(f"DROP TABLE IF EXISTS {self.schema}.anchor")  # the unsealed start
        return rows[0].seq

    async def _head(self, conn: asyncpg.Connection) -> ChainHead:
        """The last row, refusing to build on one the key did not seal."""
        last = await conn.fetchrow(
            f"SELECT seq, row_hash, row_mac FROM {self.events} ORDER BY seq DESC LIMIT 1"
        )
        if last is None:
            return ChainHead()
        if not mac_matches(row_mac(self.mac_key, last["row_hash"]), last["row_mac"]):
            raise ChainTampered(
                f"the chain's head (seq {last['seq']}) is not sealed by this service's key;"
                " run `python -m services.audit verify`"
            )
        return ChainHead(last["seq"], last["row_hash"])

    async def head(self) -> ChainHead:
        async with self.pool.acquire() as conn:
            return await self._head(conn)

    async def append(self, drafts: Sequence[EntryDraft]) -> AppendResult:
        """Append drafts in one transaction; event ids already stored (or repeated) are skipped."""
        unique: dict[str, EntryDraft] = {}
        for draft in drafts:
            unique.setdefault(draft.event_id, draft)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self._append(conn, list(unique.values()))
        return AppendResult(appended=len(rows), duplicates=len(drafts) - len(rows))

    async def _append(
        self, conn: asyncpg.Connection, drafts: list[EntryDraft], *, after: ChainHead | None = None
    ) -> list[ChainRow]:
        """Seal and insert drafts after the head (or `after`: only adoption, whose head is not
        sealed yet); the caller holds the transaction."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
        stored = {
            r["event_id"]
            for r in await conn.fetch(
                f"SELECT event_id FROM {self.events} WHERE event_id = ANY($1::text[])",
                [d.event_id for d in drafts],
            )
        }
        fresh = [d for d in drafts if d.event_id not in stored]
        if not fresh:
            return []
        rows = seal_all(
            fresh,
            after=after if after is not None else await self._head(conn),
            recorded_at=self.clock(),
            key=self.mac_key,
        )
        # COPY, not one INSERT per row: the advisory lock is held and the stored event ids were
        # read under it, so no row can conflict (if one did, the whole batch fails and is retried)
        await conn.copy_records_to_table(
            "events",
            schema_name=self.schema,
            columns=EVENT_COLUMNS,
            records=[
                (
                    r.seq, r.event_id, r.topic, r.payload_type, r.producer, r.occurred_at,
                    r.recorded_at, r.application_id, r.subject, r.payload, r.trace_id,
                    r.personal_commitment, r.prev_hash, r.row_hash, r.row_mac,
                )
                for r in rows
            ],
        )  # fmt: skip
        personal = [(d.event_id, d.personal) for d in fresh if d.personal is not None]
        if personal:
            await conn.copy_records_to_table(
                "personal_data",
                schema_name=self.schema,
                columns=("event_id", "member_id", "salt", "fields"),
                records=[
                    (event_id, p.member_id, p.salt, p.fields_json or json.dumps(dict(p.fields)))
                    for event_id, p in personal
                    if p is not None
                ],
            )
        return rows

    async def count(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {self.events}"))

    async def verify(self, batch: int = 1000) -> VerifyResult:
        """Recompute every hash and seal from the chain's start, in seq order, in one snapshot."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await self._verify(conn, await self._maintenance(conn), batch=batch)

    async def _maintenance(self, conn: asyncpg.Connection) -> list[ChainRow]:
        records = await conn.fetch(
            f"SELECT {ROW_COLUMNS} FROM {self.events}"
            " WHERE payload_type = ANY($1::text[]) ORDER BY seq",
            list(MAINTENANCE_PAYLOAD_TYPES),
        )
        return [_row(r) for r in records]

    async def _verify(
        self,
        conn: asyncpg.Connection,
        maintenance: list[ChainRow],
        *,
        after: ChainHead | None = None,
        through: int | None = None,
        batch: int = 1000,
    ) -> VerifyResult:
        """The verifier over rows after `after` (the chain's start when None) through `through`
        (the head when None); the caller holds the snapshot."""
        verifier = ChainVerifier(self.mac_key, maintenance, after=after)
        cursor = conn.cursor(
            f"SELECT {ROW_COLUMNS} FROM {self.events}"
            " WHERE seq > $1 AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq",
            after.seq if after is not None else -1,
            through,
            prefetch=batch,
        )
        async for record in cursor:
            if not verifier.check(_row(record)):
                break
        return verifier.result()

    async def trail(
        self,
        application_id: str,
        tenant: str | None,
        *,
        after: ChainHead | None = None,
        max_rows: int = 50_000,
    ) -> Trail | None:
        """An application's records within a tenant (`tenant` None: any tenant's), in chain
        order, each verified with its neighbours; and, in the same snapshot, the chain from
        `after` (a head verified before; ignored once pruned away) or its start on toward the
        application's last record, at most `max_rows` rows of it. None when the tenant has no
        record of the application."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = [
                _row(r)
                for r in await conn.fetch(
                    f"SELECT {ROW_COLUMNS} FROM {self.events} WHERE application_id = $1"
                    " AND ($2::text IS NULL OR coalesce(payload_doc->>'tenant_id', '') = $2)"
                    " ORDER BY seq",
                    application_id,
                    tenant,
                )
            ]
            if not rows:
                return None
            bounds = await conn.fetchrow(
                f"SELECT min(seq) AS first, max(seq) AS last FROM {self.events}"
            )
            maintenance = await self._maintenance(conn)
            records = [await self._checked(conn, row, maintenance) for row in rows]
            if after is not None and after.seq < bounds["first"] - 1:
                after = None  # pruned under retention since: verify from the new start
            target = rows[-1].seq
            done = after.seq if after is not None else bounds["first"] - 1
            through = min(target, done + max_rows)
            if after is not None and after.seq >= target:
                chain = await self._still_there(conn, after)
            else:
                chain = await self._verify(conn, maintenance, after=after, through=through)
        return Trail(
            records=records,
            start_seq=bounds["first"],
            head_seq=bounds["last"],
            chain=chain,
            resumed_from=after,
            complete=not chain.ok or through >= target,
        )

    async def registry_changes(self) -> list[CheckedRecord]:
        """The model registry's changes (who promoted, refused, rolled back which model), in
        chain order, each verified with its neighbours in one snapshot. They are system records:
        no tenant and no application, so no tenant's trail shows them."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = [
                _row(r)
                for r in await conn.fetch(
                    f"SELECT {ROW_COLUMNS} FROM {self.events} WHERE payload_type = $1 ORDER BY seq",
                    REGISTRY_PAYLOAD_TYPE,
                )
            ]
            maintenance = await self._maintenance(conn) if rows else []
            return [await self._checked(conn, row, maintenance) for row in rows]

    async def _checked(
        self, conn: asyncpg.Connection, row: ChainRow, maintenance: list[ChainRow]
    ) -> CheckedRecord:
        """`row` through the verifier after the stored row before it, then the row after it."""
        before = await conn.fetchrow(
            f"SELECT seq, row_hash FROM {self.events} WHERE seq < $1 ORDER BY seq DESC LIMIT 1",
            row.seq,
        )
        following = await conn.fetchrow(
            f"SELECT {ROW_COLUMNS} FROM {self.events} WHERE seq > $1 ORDER BY seq LIMIT 1",
            row.seq,
        )
        # no row before it: it must be allowed to start the chain (genesis or a retention)
        after = None if before is None else ChainHead(before["seq"], before["row_hash"])
        verifier = ChainVerifier(self.mac_key, maintenance, after=after)
        problem = "" if verifier.check(row) else verifier.result().reason
        next_problem = ""
        if following is not None:
            successor = ChainVerifier(
                self.mac_key, maintenance, after=ChainHead(row.seq, row.row_hash)
            )
            if not successor.check(_row(following)):
                next_problem = f"seq {following['seq']}: {successor.result().reason}"
        return CheckedRecord(row, problem, next_problem)

    async def _still_there(self, conn: asyncpg.Connection, head: ChainHead) -> VerifyResult:
        """A head verified before, when nothing after it needs verifying: is it still stored
        with that hash?"""
        stored = await conn.fetchval(f"SELECT row_hash FROM {self.events} WHERE seq = $1", head.seq)
        if stored == head.row_hash:
            return VerifyResult(True, 0, start=head, head=head)
        return VerifyResult(
            False,
            0,
            head.seq,
            "the row no longer holds the hash an earlier verification saw (rewritten or deleted)",
            start=head,
            head=head,
        )

    async def row_hashes(self, seqs: Collection[int]) -> Mapping[int, str]:
        """The stored hash of each of these rows that exists."""
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                f"SELECT seq, row_hash FROM {self.events} WHERE seq = ANY($1::bigint[])",
                list(seqs),
            )
        return {r["seq"]: r["row_hash"] for r in records}

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
            # the member's own events, and those of the same applications that name no member
            # (an explanation's contributions, a review's justification, an appeal's grounds)
            erased = await conn.fetch(
                f"DELETE FROM {self.schema}.personal_data WHERE member_id = $1 OR event_id IN ("
                f" SELECT e.event_id FROM {self.events} e WHERE e.application_id <> ''"
                "  AND e.application_id IN ("
                f"   SELECT o.application_id FROM {self.schema}.personal_data p"
                f"   JOIN {self.events} o USING (event_id) WHERE p.member_id = $1))"
                " RETURNING event_id",
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
                occurred_at=self.clock(),
                subject="",
                payload={"erased_event_ids": event_ids, "law": "Kenya Data Protection Act 2019"},
            )
            rows = await self._append(conn, [record])
        return ErasureResult(len(event_ids), rows[0].seq)

    # --- members' rights (services.common.member_rights) -------------------------------------

    #: The member's own events in a tenant (their personal data names them), then every event of
    #: the same applications (explanations name no member), all within the tenant.
    _MEMBER_EVENTS = """
        WITH own AS (
            SELECT e.application_id FROM {s}.personal_data p JOIN {s}.events e USING (event_id)
            WHERE p.member_id = $1 AND coalesce(e.payload_doc->>'tenant_id', '') = $2
        )
        SELECT {columns} FROM {s}.events e
        WHERE e.application_id <> '' AND e.application_id IN (SELECT application_id FROM own)
          AND coalesce(e.payload_doc->>'tenant_id', '') = $2
    """

    def _member_events_sql(self, columns: str) -> str:
        return self._MEMBER_EVENTS.format(s=self.schema, columns=columns)

    async def member_erasures(
        self, conn: asyncpg.Connection, tenant: str, member_ref: str
    ) -> list[asyncpg.Record]:
        return list(
            await conn.fetch(
                f"SELECT {ROW_COLUMNS} FROM {self.events} WHERE payload_type = $1"
                " AND payload_doc->>'member_ref' = $2 AND payload_doc->>'tenant_id' = $3"
                " ORDER BY seq",
                ERASURE_PAYLOAD_TYPE,
                member_ref,
                tenant,
            )
        )

    async def holds_member(self, tenant: str, member_id: str, member_ref: str) -> bool:
        """Whether the tenant's chain has the member's data, or records erasing it."""
        async with self.pool.acquire() as conn:
            held = await conn.fetchval(
                f"SELECT EXISTS ({self._member_events_sql('1')})", member_id, tenant
            )
            return bool(held) or bool(await self.member_erasures(conn, tenant, member_ref))

    async def member_records(
        self, tenant: str, member_id: str, member_ref: str
    ) -> list[AuditRecord]:
        """Every row about the member's applications in the tenant (personal values restored
        while not erased), then the erasures recorded for the member."""
        columns = ", ".join("e." + c.strip() for c in ROW_COLUMNS.split(","))
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                f"SELECT m.*, p.fields FROM ({self._member_events_sql(columns)}) m"
                f" LEFT JOIN {self.schema}.personal_data p USING (event_id) ORDER BY m.seq",
                member_id,
                tenant,
            )
            erasures = await self.member_erasures(conn, tenant, member_ref)
        return [
            AuditRecord(_row(r), json.loads(r["fields"]) if r["fields"] is not None else None)
            for r in records
        ] + [AuditRecord(_row(r), None) for r in erasures]

    async def erase_member_data(
        self,
        *,
        tenant: str,
        member_id: str,
        member_ref: str,
        request_id: str,
        requested_by: str,
        requested_at: datetime,
        erased_elsewhere: Mapping[str, int],
        holder: str = "audit",
    ) -> ErasureResult:
        """Crypto-shred a tenant's member and record the request, in one transaction.

        Deleting the personal data rows deletes the raw values and the salts of their
        commitments, so the chain (which hashed only the commitments) still verifies and no
        longer links to the member. The erasure event names the member by pseudonym only, with
        who asked, when, the tenant and what every store erased; its event id is the request
        id, so a repeated request is recorded once. Needs the owner's login.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            erased = await conn.fetch(
                f"DELETE FROM {self.schema}.personal_data WHERE event_id IN"
                f" (SELECT event_id FROM ({self._member_events_sql('e.event_id')}) m)"
                " RETURNING event_id",
                member_id,
                tenant,
            )
            event_ids = sorted(r["event_id"] for r in erased)
            record = draft_from_payload(
                event_id=request_id,
                topic=ERASURE_TOPIC,
                payload_type=ERASURE_PAYLOAD_TYPE,
                producer=requested_by,
                occurred_at=requested_at,
                subject="",
                payload={
                    "request_id": request_id,
                    "tenant_id": tenant,
                    "member_ref": member_ref,
                    "requested_by": requested_by,
                    "requested_at": canonical_time(requested_at),
                    "erased_event_ids": event_ids,
                    "erased": dict(erased_elsewhere) | {holder: len(event_ids)},
                    "law": "Kenya Data Protection Act 2019",
                },
            )
            rows = await self._append(conn, [record])
            seq = (
                rows[0].seq
                if rows
                else await conn.fetchval(
                    f"SELECT seq FROM {self.events} WHERE event_id = $1", request_id
                )
            )
        return ErasureResult(len(event_ids), seq)

    async def apply_retention(
        self, cutoff: datetime, *, min_age: timedelta, requested_by: str
    ) -> RetentionResult:
        """Prune the chain's prefix recorded before `cutoff`, as a sealed event in the chain.

        Refused when `cutoff` is less than `min_age` ago. The event (who, when, cut-off, the last
        pruned row) is appended first, in the same transaction; the trigger lets rows go only
        under it, and `verify` accepts the shortened chain only because of it.
        """
        now = self.clock()
        if min_age < timedelta(days=1) or min_age.total_seconds() % 86400:
            raise RetentionRefused(f"the minimum age must be whole days, at least 1 ({min_age})")
        if cutoff > now - min_age:
            raise RetentionRefused(
                f"cut-off {cutoff.isoformat()} is younger than the minimum age of"
                f" {min_age.days} days (nothing after {(now - min_age).isoformat()} may go)"
            )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            bounds = await conn.fetchrow(
                f"SELECT min(seq) AS first, max(seq) AS last,"
                f" min(seq) FILTER (WHERE recorded_at >= $1) AS young FROM {self.events}",
                cutoff,
            )
            if bounds["first"] is None:
                return RetentionResult(0, ChainHead(), None)
            through_seq = (bounds["young"] or bounds["last"] + 1) - 1
            if through_seq < bounds["first"]:
                return RetentionResult(0, ChainHead(), None)
            through_hash = await conn.fetchval(
                f"SELECT row_hash FROM {self.events} WHERE seq = $1", through_seq
            )
            through = ChainHead(through_seq, through_hash)
            record = draft_from_payload(
                event_id=f"retention-{uuid.uuid4()}",
                topic=RETENTION_TOPIC,
                payload_type=RETENTION_PAYLOAD_TYPE,
                producer=requested_by,
                occurred_at=now,
                subject="",
                payload=retention_payload(
                    requested_by=requested_by,
                    cutoff=cutoff,
                    min_age_days=min_age.days,
                    through=through,
                ),
            )
            (event,) = await self._append(conn, [record])
            await conn.execute(
                f"DELETE FROM {self.schema}.personal_data WHERE event_id IN"
                f" (SELECT event_id FROM {self.events} WHERE seq <= $1)",
                through.seq,
            )
            status = await conn.execute(f"DELETE FROM {self.events} WHERE seq <= $1", through.seq)
        return RetentionResult(int(status.split()[-1]), through, event.seq)


def personal_fields(record: AuditRecord) -> dict[str, Any]:
    """The payload as it was published, while the member's data is not erased."""
    payload: dict[str, Any] = json.loads(record.row.payload)
    return payload | (record.personal or {})
