"""The stored decisions and their explanations in PostgreSQL, and every query on them (asyncpg).

Inserts ignore rows already there (the decision id is deterministic), and a consumed batch is
written in one transaction, so a replayed batch stores nothing twice. Writing an explanation
returns the one stored first, so a replay republishes the very same event.

An erased member's decisions are deleted and the member goes into ``erased_members``, keyed by
the tenant-scoped keyed pseudonym (`member_rights.tenant_member_ref`, no raw id): a decision
redelivered from the topic that was made before the erasure is not stored again; one made after
it (the member applied again) is.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.common.postgres import is_sql_identifier
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.vocabulary import BANDS

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.decisions (
    decision_id text PRIMARY KEY,
    application_id text NOT NULL,
    member_id text NOT NULL,
    model_version text NOT NULL,
    decided_at timestamptz NOT NULL,
    band text NOT NULL,
    score integer NOT NULL,
    probability_of_default double precision NOT NULL,
    payload bytea NOT NULL,
    trace_id text NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS decisions_application_id
    ON {s}.decisions (application_id, decided_at DESC);
ALTER TABLE {s}.decisions ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS decisions_tenant_application
    ON {s}.decisions (tenant_id, application_id, decided_at DESC);
CREATE INDEX IF NOT EXISTS decisions_tenant_member ON {s}.decisions (tenant_id, member_id);
CREATE TABLE IF NOT EXISTS {s}.erased_members (
    member_ref text PRIMARY KEY,
    erased_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.reviews (
    review_id text PRIMARY KEY,
    decision_id text NOT NULL,
    tenant_id text NOT NULL,
    reviewed_at timestamptz NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_decision ON {s}.reviews (decision_id, reviewed_at DESC);
CREATE TABLE IF NOT EXISTS {s}.explanations (
    decision_id text PRIMARY KEY REFERENCES {s}.decisions (decision_id) ON DELETE CASCADE,
    payload bytea NOT NULL,
    explained_at timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class StoredDecision:
    """A decision as it arrived, with the trace it arrived in."""

    decision: CreditDecision
    trace_id: str = ""


def _decision_row(item: StoredDecision) -> tuple[object, ...]:
    d = item.decision
    return (
        d.decision_id,
        d.application_id,
        d.member_id,
        d.model_version,
        d.decided_at.ToDatetime(tzinfo=UTC),
        BANDS.name_or(d.band, "unspecified"),
        int(d.score),
        float(d.probability_of_default),
        d.SerializeToString(deterministic=True),
        item.trace_id,
        d.tenant_id,
    )


def _explanation_row(e: CreditExplanation) -> tuple[object, ...]:
    return (
        e.decision_id,
        e.SerializeToString(deterministic=True),
        e.explained_at.ToDatetime(tzinfo=UTC),
    )


def _decision(payload: bytes) -> CreditDecision:
    decision = CreditDecision()
    decision.ParseFromString(payload)
    return decision


def _explanation(payload: bytes) -> CreditExplanation:
    explanation = CreditExplanation()
    explanation.ParseFromString(payload)
    return explanation


class DecisionStore:
    """Decisions and explanations in one PostgreSQL schema (tests use a fresh one each run)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str = "explanation",
        member_ref: Callable[[str, str], str] | None = None,
    ) -> None:
        """`member_ref(tenant, member_id)` is the tenant-scoped pseudonym of the erased-members
        set; without it erasures are not remembered (the operator tool's read-only uses)."""
        if not is_sql_identifier(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.pool = pool
        self.schema = schema
        self.member_ref = member_ref
        self.lock_key = zlib.crc32(f"alama-explanation:{schema}".encode())

    async def create_schema(self) -> None:
        """Create what is missing; the lock keeps concurrent starters from racing on DDL."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            await conn.execute(SCHEMA_SQL.format(s=self.schema))

    async def save_batch(
        self, decisions: Sequence[StoredDecision], explanations: Sequence[CreditExplanation]
    ) -> dict[str, CreditExplanation]:
        """Store a batch in one transaction; returns the stored explanation of each decision id."""
        async with self.pool.acquire() as conn, conn.transaction():
            if decisions:
                await self._insert_decisions(conn, decisions)
            return await self._insert_explanations(conn, explanations)

    async def save_decisions(self, decisions: Sequence[StoredDecision]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._insert_decisions(conn, decisions)

    async def save_explanation(self, explanation: CreditExplanation) -> CreditExplanation:
        """Store one explanation unless one is there; returns the stored one."""
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await self._insert_explanations(conn, [explanation])
        return stored[explanation.decision_id]

    async def _insert_decisions(
        self, conn: asyncpg.Connection, decisions: Sequence[StoredDecision]
    ) -> None:
        decisions = await self._not_erased(conn, decisions)
        if not decisions:
            return
        await conn.executemany(
            f"INSERT INTO {self.schema}.decisions (decision_id, application_id, member_id,"
            " model_version, decided_at, band, score, probability_of_default, payload, trace_id,"
            " tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (decision_id) DO NOTHING",
            [_decision_row(d) for d in decisions],
        )

    async def _not_erased(
        self, conn: asyncpg.Connection, decisions: Sequence[StoredDecision]
    ) -> list[StoredDecision]:
        """The decisions that are not an erased member's from before the erasure."""
        if self.member_ref is None or not decisions:
            return list(decisions)
        refs = [self.member_ref(d.decision.tenant_id, d.decision.member_id) for d in decisions]
        rows = await conn.fetch(
            f"SELECT member_ref, erased_at FROM {self.schema}.erased_members"
            " WHERE member_ref = ANY($1::text[])",
            sorted(set(refs)),
        )
        erased: dict[str, datetime] = {r["member_ref"]: r["erased_at"] for r in rows}
        return [
            d
            for d, ref in zip(decisions, refs, strict=True)
            if ref not in erased or d.decision.decided_at.ToDatetime(tzinfo=UTC) > erased[ref]
        ]

    async def _insert_explanations(
        self, conn: asyncpg.Connection, explanations: Sequence[CreditExplanation]
    ) -> dict[str, CreditExplanation]:
        if not explanations:
            return {}
        # only for stored decisions: an erased member's refused decision gets no explanation
        await conn.executemany(
            f"INSERT INTO {self.schema}.explanations (decision_id, payload, explained_at)"
            " SELECT $1::text, $2::bytea, $3::timestamptz WHERE EXISTS"
            f" (SELECT 1 FROM {self.schema}.decisions WHERE decision_id = $1)"
            " ON CONFLICT (decision_id) DO NOTHING",
            [_explanation_row(e) for e in explanations],
        )
        rows = await conn.fetch(
            f"SELECT decision_id, payload FROM {self.schema}.explanations"
            " WHERE decision_id = ANY($1::text[])",
            [e.decision_id for e in explanations],
        )
        return {r["decision_id"]: _explanation(r["payload"]) for r in rows}

    async def decision(
        self, decision_id: str, tenant_id: str | None = None
    ) -> CreditDecision | None:
        """The decision, None when unknown or another tenant's (`tenant_id` None: any tenant's)."""
        async with self.pool.acquire() as conn:
            payload = await conn.fetchval(
                f"SELECT payload FROM {self.schema}.decisions WHERE decision_id = $1"
                " AND ($2::text IS NULL OR tenant_id = $2)",
                decision_id,
                tenant_id,
            )
        return None if payload is None else _decision(payload)

    async def latest_decision(
        self, application_id: str, tenant_id: str | None = None
    ) -> CreditDecision | None:
        """The application's most recent decision within the tenant (application ids are each
        tenant's own; a new model makes another decision)."""
        async with self.pool.acquire() as conn:
            payload = await conn.fetchval(
                f"SELECT payload FROM {self.schema}.decisions WHERE application_id = $1"
                " AND ($2::text IS NULL OR tenant_id = $2)"
                " ORDER BY decided_at DESC, stored_at DESC LIMIT 1",
                application_id,
                tenant_id,
            )
        return None if payload is None else _decision(payload)

    async def explanation(
        self, decision_id: str, tenant_id: str | None = None
    ) -> CreditExplanation | None:
        async with self.pool.acquire() as conn:
            payload = await conn.fetchval(
                f"SELECT e.payload FROM {self.schema}.explanations e"
                f" JOIN {self.schema}.decisions d USING (decision_id)"
                " WHERE e.decision_id = $1 AND ($2::text IS NULL OR d.tenant_id = $2)",
                decision_id,
                tenant_id,
            )
        return None if payload is None else _explanation(payload)

    async def save_review(self, review: ReviewOutcome) -> bool:
        """Keep a person's review of a decision (from credit.review_outcomes); a redelivered
        one changes nothing. False when it was there already."""
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                f"INSERT INTO {self.schema}.reviews"
                " (review_id, decision_id, tenant_id, reviewed_at, payload)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                review.review_id,
                review.decision_id,
                review.tenant_id,
                review.reviewed_at.ToDatetime(tzinfo=UTC),
                review.SerializeToString(deterministic=True),
            )
        return status.endswith(" 1")

    async def latest_review(
        self, decision_id: str, tenant_id: str | None = None
    ) -> ReviewOutcome | None:
        """The decision's most recent review within the tenant (an appeal makes another)."""
        async with self.pool.acquire() as conn:
            payload = await conn.fetchval(
                f"SELECT payload FROM {self.schema}.reviews WHERE decision_id = $1"
                " AND ($2::text IS NULL OR tenant_id = $2)"
                " ORDER BY reviewed_at DESC, review_id LIMIT 1",
                decision_id,
                tenant_id,
            )
        if payload is None:
            return None
        review = ReviewOutcome()
        review.ParseFromString(payload)
        return review

    # --- members' rights (services.common.member_rights) -------------------------------------

    async def application_members(
        self, after: tuple[str, str] = ("", ""), limit: int = 10_000
    ) -> list[tuple[str, str, str]]:
        """(tenant, application id, member id) of every decided application, in key order
        after `after`: one page, for filing other stores' rows under members' pseudonyms."""
        rows = await self.pool.fetch(
            f"SELECT DISTINCT tenant_id, application_id, member_id FROM {self.schema}.decisions"
            " WHERE (tenant_id, application_id) > ($1, $2)"
            " ORDER BY tenant_id, application_id LIMIT $3",
            after[0],
            after[1],
            limit,
        )
        return [(r["tenant_id"], r["application_id"], r["member_id"]) for r in rows]

    async def holds_member(self, tenant_id: str, member_id: str) -> bool:
        async with self.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {self.schema}.decisions"
                    " WHERE tenant_id = $1 AND member_id = $2)",
                    tenant_id,
                    member_id,
                )
            )

    async def erased(self, tenant_id: str, member_id: str) -> bool:
        """Whether the tenant's member has been erased (False where no key is set)."""
        if self.member_ref is None:
            return False
        async with self.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {self.schema}.erased_members"
                    " WHERE member_ref = $1)",
                    self.member_ref(tenant_id, member_id),
                )
            )

    async def member_decisions(
        self, tenant_id: str, member_id: str
    ) -> list[tuple[CreditDecision, CreditExplanation | None]]:
        """The member's decisions in the tenant, oldest first, each with its explanation."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT d.payload AS decision, e.payload AS explanation"
                f" FROM {self.schema}.decisions d"
                f" LEFT JOIN {self.schema}.explanations e USING (decision_id)"
                " WHERE d.tenant_id = $1 AND d.member_id = $2"
                " ORDER BY d.decided_at, d.decision_id",
                tenant_id,
                member_id,
            )
        return [
            (
                _decision(r["decision"]),
                None if r["explanation"] is None else _explanation(r["explanation"]),
            )
            for r in rows
        ]

    async def erase_member(
        self, tenant_id: str, member_id: str, erased_at: datetime | None = None
    ) -> int:
        """Delete the member's decisions in the tenant and (by cascade) their explanations,
        and remember the erasure (tenant-scoped pseudonym and time) where a key is set.

        The rows are deleted, not masked: they are a read model of the decision topic, which
        keeps the events until its retention ends (what the erasure receipt says it keeps).
        Returns the number of decisions deleted.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if self.member_ref is not None:
                await conn.execute(
                    f"INSERT INTO {self.schema}.erased_members (member_ref, erased_at)"
                    " VALUES ($1, $2) ON CONFLICT (member_ref)"
                    " DO UPDATE SET erased_at = greatest(erased_members.erased_at, $2)",
                    self.member_ref(tenant_id, member_id),
                    erased_at or datetime.now(UTC),
                )
            await conn.execute(  # a review's justification may describe the member
                f"DELETE FROM {self.schema}.reviews r USING {self.schema}.decisions d"
                " WHERE r.decision_id = d.decision_id AND d.tenant_id = $1 AND d.member_id = $2",
                tenant_id,
                member_id,
            )
            status = await conn.execute(
                f"DELETE FROM {self.schema}.decisions WHERE tenant_id = $1 AND member_id = $2",
                tenant_id,
                member_id,
            )
        return int(status.split()[-1])
