"""The retrainer's own PostgreSQL schema: what a challenger learns from and when it was due.

- `applications`: the application fields training needs (member, product, amount, term, time),
  kept from `loan.applications` (a 7-day topic) until the loan's outcome matures months later;
- `outcomes`: each application's outcome, from `credit.loan_outcomes`;
- `triggers`: drift and performance alerts not yet answered by a run;
- `runs`: every run, its trigger, result and the challenger it registered.

Writes are upserts keyed by the event's identity, so a replayed batch changes nothing. The
applications hold member ids (personal data, kept for training only) and the outcomes say how the
member's loans went: a member's erasure deletes both (`erase_member`, through
`services.retrainer.member_data`) and puts the member into `erased_members`, keyed by the
tenant-scoped keyed pseudonym (`member_rights.tenant_member_ref`, no raw id), so an application
from before the erasure redelivered from the topic is not stored again; one made after it (the
member applied again) is. Triggers and runs hold no member's data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pandas as pd

from services.common.postgres import is_sql_identifier

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.applications (
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    member_id text NOT NULL,
    product text NOT NULL,
    amount_kes double precision NOT NULL,
    term_months integer NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, application_id)
);
CREATE TABLE IF NOT EXISTS {s}.outcomes (
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    loan_id text NOT NULL,
    defaulted boolean NOT NULL,
    outcome_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, application_id)
);
CREATE TABLE IF NOT EXISTS {s}.triggers (
    trigger_id text PRIMARY KEY,
    kind text NOT NULL,
    detail jsonb NOT NULL,
    raised_at timestamptz NOT NULL,
    answered_by text
);
CREATE INDEX IF NOT EXISTS triggers_open ON {s}.triggers (raised_at) WHERE answered_by IS NULL;
CREATE TABLE IF NOT EXISTS {s}.watching (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    since timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.runs (
    run_id text PRIMARY KEY,
    trigger text NOT NULL,
    reason text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    status text NOT NULL,
    live_rows integer,
    model_version text,
    bundle_version text,
    detail jsonb
);
CREATE INDEX IF NOT EXISTS applications_member ON {s}.applications (tenant_id, member_id);
CREATE TABLE IF NOT EXISTS {s}.erased_members (
    member_ref text PRIMARY KEY,
    erased_at timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class ApplicationRow:
    tenant_id: str
    application_id: str
    member_id: str
    product: str
    amount_kes: float
    term_months: int
    applied_at: datetime


@dataclass(frozen=True)
class OutcomeRow:
    tenant_id: str
    application_id: str
    loan_id: str
    defaulted: bool
    outcome_at: datetime


@dataclass(frozen=True)
class Trigger:
    trigger_id: str
    kind: str  # "drift" or "performance"
    detail: dict[str, Any]
    raised_at: datetime


@dataclass(frozen=True)
class Run:
    run_id: str
    trigger: str
    reason: str
    started_at: datetime
    finished_at: datetime | None
    status: str  # running, registered, refused, failed
    live_rows: int | None
    model_version: str | None
    bundle_version: str | None
    detail: dict[str, Any] | None


class RetrainerStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str = "retrainer",
        member_ref: Callable[[str, str], str] | None = None,
    ) -> None:
        """`member_ref` is the tenant-scoped keyed pseudonym (`member_rights.tenant_member_ref`):
        the key of the erased-members set; without it erasures are not remembered (tools that
        only read runs)."""
        if not is_sql_identifier(schema):
            raise ValueError(f"not a schema name: {schema!r}")
        self.pool = pool
        self.s = schema
        self.member_ref = member_ref

    async def create_schema(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # two processes creating the schema at once collide on the catalogue's keys
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.s)
            await conn.execute(SCHEMA_SQL.format(s=self.s))

    async def add_applications(self, rows: Sequence[ApplicationRow]) -> None:
        """Store applications, except an erased member's made at or before the erasure."""
        if rows:
            await self.pool.executemany(
                f"INSERT INTO {self.s}.applications"
                " SELECT $1::text, $2::text, $3::text, $4::text, $5::float8, $6::integer,"
                " $7::timestamptz WHERE NOT EXISTS"
                f" (SELECT 1 FROM {self.s}.erased_members"
                "  WHERE member_ref = $8 AND erased_at >= $7)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        r.tenant_id,
                        r.application_id,
                        r.member_id,
                        r.product,
                        r.amount_kes,
                        r.term_months,
                        r.applied_at,
                        self._ref(r.tenant_id, r.member_id),
                    )
                    for r in rows
                ],
            )

    def _ref(self, tenant: str, member_id: str) -> str | None:
        return None if self.member_ref is None else self.member_ref(tenant, member_id)

    async def add_outcomes(self, rows: Sequence[OutcomeRow]) -> None:
        if rows:
            await self.pool.executemany(
                f"INSERT INTO {self.s}.outcomes (tenant_id, application_id, loan_id, defaulted,"
                " outcome_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [
                    (r.tenant_id, r.application_id, r.loan_id, r.defaulted, r.outcome_at)
                    for r in rows
                ],
            )

    async def add_triggers(self, triggers: Sequence[Trigger]) -> None:
        if triggers:
            await self.pool.executemany(
                f"INSERT INTO {self.s}.triggers (trigger_id, kind, detail, raised_at)"
                " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT DO NOTHING",
                [(t.trigger_id, t.kind, json.dumps(t.detail), t.raised_at) for t in triggers],
            )

    async def open_triggers(self) -> list[Trigger]:
        rows = await self.pool.fetch(
            f"SELECT trigger_id, kind, detail, raised_at FROM {self.s}.triggers"
            " WHERE answered_by IS NULL ORDER BY raised_at, trigger_id"
        )
        return [
            Trigger(r["trigger_id"], r["kind"], json.loads(r["detail"]), r["raised_at"])
            for r in rows
        ]

    async def labelled(self, tenant: str | None = None) -> pd.DataFrame:
        """Every kept application with its outcome, in the contract's columns."""
        rows = await self.pool.fetch(
            f"SELECT a.application_id, a.member_id, a.tenant_id AS sacco_id, a.applied_at,"
            " a.product, a.amount_kes, a.term_months, o.defaulted::int AS default_12m,"
            f" o.outcome_at FROM {self.s}.applications a JOIN {self.s}.outcomes o"
            " USING (tenant_id, application_id)"
            " WHERE $1::text IS NULL OR a.tenant_id = $1 ORDER BY a.applied_at",
            tenant,
        )
        columns = [
            "application_id",
            "member_id",
            "sacco_id",
            "applied_at",
            "product",
            "amount_kes",
            "term_months",
            "default_12m",
            "outcome_at",
        ]
        return pd.DataFrame([dict(r) for r in rows], columns=columns)

    async def labelled_since(self, since: datetime | None) -> int:
        """Outcomes received (with their application kept) since a time; all when None."""
        value = await self.pool.fetchval(
            f"SELECT count(*) FROM {self.s}.outcomes o JOIN {self.s}.applications a"
            " USING (tenant_id, application_id)"
            " WHERE $1::timestamptz IS NULL OR o.received_at > $1",
            since,
        )
        return int(value or 0)

    async def start_run(self, run_id: str, trigger: str, reason: str, at: datetime) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.s}.runs (run_id, trigger, reason, started_at, status)"
            " VALUES ($1, $2, $3, $4, 'running')",
            run_id,
            trigger,
            reason,
            at,
        )

    async def finish_run(
        self,
        run_id: str,
        status: str,
        at: datetime,
        *,
        live_rows: int | None = None,
        model_version: str | None = None,
        bundle_version: str | None = None,
        detail: dict[str, Any] | None = None,
        answered: Sequence[str] = (),
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE {self.s}.runs SET status = $2, finished_at = $3, live_rows = $4,"
                " model_version = $5, bundle_version = $6, detail = $7::jsonb"
                " WHERE run_id = $1",
                run_id,
                status,
                at,
                live_rows,
                model_version,
                bundle_version,
                json.dumps(detail or {}, default=str),
            )
            if answered:
                await conn.execute(
                    f"UPDATE {self.s}.triggers SET answered_by = $1"
                    " WHERE trigger_id = ANY($2::text[])",
                    run_id,
                    list(answered),
                )

    async def runs(self, limit: int = 20) -> list[Run]:
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.s}.runs ORDER BY started_at DESC LIMIT $1", limit
        )
        return [
            Run(
                r["run_id"],
                r["trigger"],
                r["reason"],
                r["started_at"],
                r["finished_at"],
                r["status"],
                r["live_rows"],
                r["model_version"],
                r["bundle_version"],
                json.loads(r["detail"]) if r["detail"] else None,
            )
            for r in rows
        ]

    async def watching_since(self, now: datetime) -> datetime:
        """When the retrainer first started here (recorded by the first start)."""
        await self.pool.execute(
            f"INSERT INTO {self.s}.watching (since) VALUES ($1) ON CONFLICT DO NOTHING", now
        )
        value: datetime = await self.pool.fetchval(f"SELECT since FROM {self.s}.watching")
        return value

    async def abandon_running(self, at: datetime) -> int:
        """Runs a stopped retrainer left as running are failed (their process is gone)."""
        status = await self.pool.execute(
            f"UPDATE {self.s}.runs SET status = 'failed', finished_at = $1, detail = $2::jsonb"
            " WHERE status = 'running'",
            at,
            json.dumps({"error": "the retrainer stopped during the run"}),
        )
        return int(status.split()[-1])

    # --- members' rights (services.common.member_rights) -------------------------------------

    async def holds_member(self, tenant: str, member_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {self.s}.applications"
                " WHERE tenant_id = $1 AND member_id = $2)",
                tenant,
                member_id,
            )
        )

    async def member_data(self, tenant: str, member_id: str) -> dict[str, Any]:
        """Everything kept on the member: the applications and each one's outcome."""
        async with self.pool.acquire() as conn:
            applications = await conn.fetch(
                f"SELECT * FROM {self.s}.applications WHERE tenant_id = $1 AND member_id = $2"
                " ORDER BY applied_at, application_id",
                tenant,
                member_id,
            )
            outcomes = await conn.fetch(
                f"SELECT o.* FROM {self.s}.outcomes o JOIN {self.s}.applications a"
                " USING (tenant_id, application_id) WHERE a.tenant_id = $1 AND a.member_id = $2"
                " ORDER BY o.outcome_at, o.application_id",
                tenant,
                member_id,
            )
        return {
            "applications": [_plain(dict(r)) for r in applications],
            "outcomes": [_plain(dict(r)) for r in outcomes],
        }

    async def erase_member(
        self, tenant: str, member_id: str, erased_at: datetime | None = None
    ) -> int:
        """Delete the member's applications in the tenant made at or before `erased_at` (all of
        them when None), with their outcomes, and remember the erasure (pseudonym and time)
        where a key is set. Returns the rows deleted.

        The erasure is dated at the request, not when this store got to it (the retrainer may
        start days later): what the member sent after asking stays, whatever order the backlog
        is read in."""
        async with self.pool.acquire() as conn, conn.transaction():
            if self.member_ref is not None:
                await conn.execute(
                    f"INSERT INTO {self.s}.erased_members (member_ref, erased_at)"
                    " VALUES ($1, $2) ON CONFLICT (member_ref)"
                    " DO UPDATE SET erased_at = greatest(erased_members.erased_at, $2)",
                    self.member_ref(tenant, member_id),
                    erased_at or datetime.now(UTC),
                )
            member = (
                "a.tenant_id = $1 AND a.member_id = $2"
                " AND ($3::timestamptz IS NULL OR a.applied_at <= $3)"
            )
            outcomes = await conn.execute(
                f"DELETE FROM {self.s}.outcomes o USING {self.s}.applications a"
                " WHERE o.tenant_id = a.tenant_id AND o.application_id = a.application_id"
                f" AND {member}",
                tenant,
                member_id,
                erased_at,
            )
            applications = await conn.execute(
                f"DELETE FROM {self.s}.applications a WHERE {member}",
                tenant,
                member_id,
                erased_at,
            )
        return sum(int(status.split()[-1]) for status in (outcomes, applications))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON carries it (times as ISO text)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
