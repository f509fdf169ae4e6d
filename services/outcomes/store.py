"""The outcomes service's own PostgreSQL schema: what it needs to join a loan to the decision
that approved it, whatever order the topics deliver them in.

- `decisions`: per application, the latest decision (its PD, band, bundle, application time) and
  the band a person's review left standing;
- `loans`: disbursements;
- `instalments`: each instalment's days late as recorded (one row per loan and due date; a later
  record of the same instalment replaces the earlier);
- `outcomes`: each loan's outcome once known, written once (the loan id is the key), with whether
  it has been published;
- `shadow_decisions`: the challenger's decision per application and bundle (scored in shadow, acted
  on by nobody), joined to the champion's in `decisions` by application when read, so either may
  arrive first;
- `applicant_groups`: per application only the gender and age band core banking sent for fairness
  oversight (never the member's other data), for fairness by group in the shadow comparison;
- `performance_alerts`: each (bundle, month, metric) alert raised, written once, with whether it
  has been published: a breach that lasts is alerted once, not on every refresh.

Every write is an upsert keyed by the event's own identity, so a replayed batch changes nothing.

Members' rights (`services.outcomes.member_data`): every row of the first five tables, and each
outcome, carries its member's tenant-scoped keyed pseudonym (`member_ref`, never the raw id), so
an export or an erasure finds the member's rows; `erased_members` remembers each erasure by that
pseudonym and its date, and no write stores again what the member had sent by then (a replay, a
late backlog). Rows stored before the column existed carry none until the topics are replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.common.postgres import is_sql_identifier
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.vocabulary import BANDS
from services.outcomes.rules import Instalment, Known
from services.outcomes.shadow import ShadowPair

DECLINE = int(DecisionBand.DECISION_BAND_DECLINE)

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.decisions (
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    decision_id text NOT NULL,
    model_version text NOT NULL,
    probability_of_default double precision NOT NULL,
    band smallint NOT NULL,
    final_band smallint,
    applied_at timestamptz,
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, application_id)
);
-- the declines that never became a loan are counted every refresh: from this index alone (about
-- a tenth of the decisions), not a parallel scan of every decision ever made (1.4 s of three
-- processes a minute on 1.6 million)
CREATE INDEX IF NOT EXISTS decisions_declined ON {s}.decisions (tenant_id, model_version,
    application_id) WHERE coalesce(final_band, band) = {decline};
CREATE TABLE IF NOT EXISTS {s}.loans (
    tenant_id text NOT NULL,
    loan_id text NOT NULL,
    application_id text NOT NULL,
    term_months integer NOT NULL,
    principal_kes double precision NOT NULL,
    disbursed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, loan_id)
);
CREATE INDEX IF NOT EXISTS loans_application ON {s}.loans (tenant_id, application_id);
CREATE TABLE IF NOT EXISTS {s}.instalments (
    tenant_id text NOT NULL,
    loan_id text NOT NULL,
    due_date timestamptz NOT NULL,
    days_late integer NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, loan_id, due_date)
);
CREATE TABLE IF NOT EXISTS {s}.outcomes (
    tenant_id text NOT NULL,
    loan_id text NOT NULL,
    application_id text NOT NULL,
    decision_id text NOT NULL,
    model_version text NOT NULL,
    defaulted boolean NOT NULL,
    outcome_at timestamptz NOT NULL,
    max_days_late integer NOT NULL,
    instalments_observed integer NOT NULL,
    probability_of_default double precision NOT NULL,
    band smallint NOT NULL,
    final_band smallint,
    applied_at timestamptz,
    disbursed_at timestamptz NOT NULL,
    published boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, loan_id)
);
CREATE INDEX IF NOT EXISTS outcomes_unpublished ON {s}.outcomes (tenant_id) WHERE NOT published;
CREATE INDEX IF NOT EXISTS outcomes_application ON {s}.outcomes (tenant_id, application_id);
CREATE TABLE IF NOT EXISTS {s}.shadow_decisions (
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    model_version text NOT NULL,
    decision_id text NOT NULL,
    probability_of_default double precision NOT NULL,
    band smallint NOT NULL,
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, application_id, model_version)
);
CREATE INDEX IF NOT EXISTS shadow_by_challenger ON {s}.shadow_decisions (model_version);
CREATE TABLE IF NOT EXISTS {s}.applicant_groups (
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    gender text NOT NULL,
    age_band text NOT NULL,
    PRIMARY KEY (tenant_id, application_id)
);
CREATE TABLE IF NOT EXISTS {s}.performance_alerts (
    model_version text NOT NULL,
    month text NOT NULL,
    metric text NOT NULL,
    alert_id text NOT NULL,
    value double precision NOT NULL,
    reference double precision NOT NULL,
    threshold double precision NOT NULL,
    loans integer NOT NULL,
    raised_at timestamptz NOT NULL,
    published boolean NOT NULL DEFAULT false,
    PRIMARY KEY (model_version, month, metric)
);
ALTER TABLE {s}.decisions ADD COLUMN IF NOT EXISTS member_ref text;
ALTER TABLE {s}.loans ADD COLUMN IF NOT EXISTS member_ref text;
ALTER TABLE {s}.instalments ADD COLUMN IF NOT EXISTS member_ref text;
ALTER TABLE {s}.outcomes ADD COLUMN IF NOT EXISTS member_ref text;
ALTER TABLE {s}.shadow_decisions ADD COLUMN IF NOT EXISTS member_ref text,
    ADD COLUMN IF NOT EXISTS applied_at timestamptz;
ALTER TABLE {s}.applicant_groups ADD COLUMN IF NOT EXISTS member_ref text,
    ADD COLUMN IF NOT EXISTS applied_at timestamptz;
CREATE INDEX IF NOT EXISTS decisions_member ON {s}.decisions (member_ref)
    WHERE member_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS loans_member ON {s}.loans (member_ref) WHERE member_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS instalments_member ON {s}.instalments (member_ref)
    WHERE member_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS outcomes_member ON {s}.outcomes (member_ref)
    WHERE member_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS shadow_member ON {s}.shadow_decisions (member_ref)
    WHERE member_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS groups_member ON {s}.applicant_groups (member_ref)
    WHERE member_ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.erased_members (
    member_ref text PRIMARY KEY,
    erased_at timestamptz NOT NULL
);
"""

#: Not stored again: a row of a member erased at or after the time the row's event happened.
_NOT_ERASED = (
    "NOT EXISTS (SELECT 1 FROM {s}.erased_members e"
    " WHERE e.member_ref = {ref} AND e.erased_at >= coalesce({at}, '-infinity'::timestamptz))"
)

#: Each table of members' data, in the order an erasure deletes them (what is derived first).
MEMBER_TABLES = (
    "outcomes",
    "instalments",
    "loans",
    "shadow_decisions",
    "applicant_groups",
    "decisions",
)

#: A member's applications made by $3 (all when NULL): those its rows name, dated by when the
#: member applied; and its loans: those of these applications, and those its rows name, dated by
#: disbursement or, for an instalment of a loan not yet seen, its record.
_MEMBER_KEYS = """
WITH apps AS (
    SELECT application_id FROM {s}.decisions WHERE member_ref = $1 AND tenant_id = $2
        AND ($3::timestamptz IS NULL OR coalesce(applied_at, decided_at) <= $3)
    UNION SELECT application_id FROM {s}.shadow_decisions WHERE member_ref = $1
        AND tenant_id = $2 AND ($3::timestamptz IS NULL OR coalesce(applied_at, decided_at) <= $3)
    UNION SELECT application_id FROM {s}.applicant_groups WHERE member_ref = $1
        AND tenant_id = $2 AND ($3::timestamptz IS NULL OR applied_at IS NULL OR applied_at <= $3)
    UNION SELECT application_id FROM {s}.outcomes WHERE member_ref = $1 AND tenant_id = $2
        AND ($3::timestamptz IS NULL OR coalesce(applied_at, disbursed_at) <= $3)
), loans AS (
    SELECT loan_id FROM {s}.loans WHERE tenant_id = $2 AND (application_id IN (SELECT * FROM apps)
        OR member_ref = $1 AND ($3::timestamptz IS NULL OR disbursed_at <= $3))
    UNION SELECT loan_id FROM {s}.outcomes WHERE tenant_id = $2
        AND application_id IN (SELECT * FROM apps)
    UNION SELECT loan_id FROM {s}.instalments WHERE member_ref = $1 AND tenant_id = $2
        AND ($3::timestamptz IS NULL OR recorded_at <= $3)
)
SELECT (SELECT coalesce(array_agg(application_id), '{{}}') FROM apps) AS apps,
       (SELECT coalesce(array_agg(loan_id), '{{}}') FROM loans) AS loans
"""

#: Per table, the column naming an application and the column naming a loan ("" none): how the
#: rows of a member's applications and loans are found.
_KEYED_BY = {
    "outcomes": ("application_id", "loan_id"),
    "instalments": ("", "loan_id"),
    "loans": ("", "loan_id"),
    "shadow_decisions": ("application_id", ""),
    "applicant_groups": ("application_id", ""),
    "decisions": ("application_id", ""),
}


def _of_member(table: str, apps: list[str], loans: list[str]) -> tuple[str, list[Any]]:
    """The condition (after $1, the tenant) selecting a table's rows of these applications and
    loans, and its arguments."""
    terms, args = [], []
    for column, keys in zip(_KEYED_BY[table], (apps, loans), strict=True):
        if column:
            args.append(keys)
            terms.append(f"{column} = ANY(${len(args) + 1}::text[])")
    return " OR ".join(terms), args


@dataclass(frozen=True)
class DecisionRow:
    tenant_id: str
    application_id: str
    decision_id: str
    model_version: str
    probability_of_default: float
    band: int
    applied_at: datetime | None
    decided_at: datetime
    member_ref: str | None = None


@dataclass(frozen=True)
class LoanRow:
    tenant_id: str
    loan_id: str
    application_id: str
    term_months: int
    principal_kes: float
    disbursed_at: datetime
    member_ref: str | None = None


@dataclass(frozen=True)
class InstalmentRow:
    tenant_id: str
    loan_id: str
    due_date: datetime
    days_late: int
    recorded_at: datetime
    member_ref: str | None = None


@dataclass(frozen=True)
class Pending:
    """A disbursed loan whose decision is known and whose outcome is not yet."""

    loan: LoanRow
    decision: DecisionRow
    final_band: int | None
    instalments: list[Instalment]


@dataclass(frozen=True)
class OutcomeRow:
    tenant_id: str
    loan_id: str
    application_id: str
    decision_id: str
    model_version: str
    defaulted: bool
    outcome_at: datetime
    max_days_late: int
    instalments_observed: int
    probability_of_default: float
    band: int
    final_band: int | None
    applied_at: datetime | None
    disbursed_at: datetime


@dataclass(frozen=True)
class ApplicantGroups:
    """The protected attributes of one application, as core banking sent them ("" unknown)."""

    tenant_id: str
    application_id: str
    gender: str
    age_band: str
    applied_at: datetime | None = None
    member_ref: str | None = None


@dataclass(frozen=True)
class PerformanceAlertRow:
    model_version: str
    month: str
    metric: str
    alert_id: str
    value: float
    reference: float
    threshold: float
    loans: int
    raised_at: datetime


class OutcomesStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str = "outcomes",
        member_ref: Callable[[str, str], str] | None = None,
    ) -> None:
        """`member_ref` is the tenant-scoped keyed pseudonym (`member_rights.tenant_member_ref`)
        rows are stored under; without it rows carry none and members' rights find nothing
        (tools that only read performance)."""
        if not is_sql_identifier(schema):
            raise ValueError(f"not a schema name: {schema!r}")
        self.pool = pool
        self.s = schema
        self.member_ref = member_ref

    def ref(self, tenant: str, member_id: str) -> str | None:
        """The pseudonym a member's rows are stored under (None without a key)."""
        return None if self.member_ref is None else self.member_ref(tenant, member_id)

    def _kept(self, ref: str, at: str) -> str:
        return _NOT_ERASED.format(s=self.s, ref=ref, at=at)

    async def create_schema(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # the service and the members' rights tool may create it at once
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.s)
            await conn.execute(SCHEMA_SQL.format(s=self.s, decline=DECLINE))

    async def add_decisions(self, decisions: Sequence[DecisionRow]) -> None:
        """The latest decision per application stands (a re-score by another bundle replaces
        an earlier one; a replay of an older one does not)."""
        if not decisions:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.decisions AS d (tenant_id, application_id, decision_id,"
            " model_version, probability_of_default, band, applied_at, decided_at, member_ref)"
            " SELECT $1::text, $2::text, $3::text, $4::text, $5::float8, $6::smallint,"
            " $7::timestamptz, $8::timestamptz, $9::text"
            f" WHERE {self._kept('$9', 'coalesce($7, $8)')}"
            " ON CONFLICT (tenant_id, application_id) DO UPDATE SET"
            " decision_id = excluded.decision_id, model_version = excluded.model_version,"
            " probability_of_default = excluded.probability_of_default, band = excluded.band,"
            " applied_at = excluded.applied_at, decided_at = excluded.decided_at,"
            " member_ref = coalesce(excluded.member_ref, d.member_ref),"
            " final_band = CASE WHEN d.decision_id = excluded.decision_id THEN d.final_band END"
            " WHERE excluded.decided_at >= d.decided_at",
            [
                (
                    d.tenant_id,
                    d.application_id,
                    d.decision_id,
                    d.model_version,
                    d.probability_of_default,
                    d.band,
                    d.applied_at,
                    d.decided_at,
                    d.member_ref,
                )
                for d in decisions
            ],
        )

    async def add_reviews(self, reviews: Sequence[tuple[str, str, str, int]]) -> None:
        """(tenant, application, decision, final band): a person's review of that decision."""
        if not reviews:
            return
        await self.pool.executemany(
            f"UPDATE {self.s}.decisions SET final_band = $4"
            " WHERE tenant_id = $1 AND application_id = $2 AND decision_id = $3",
            list(reviews),
        )

    async def add_loans(self, loans: Sequence[LoanRow]) -> None:
        if not loans:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.loans AS l (tenant_id, loan_id, application_id, term_months,"
            " principal_kes, disbursed_at, member_ref)"
            " SELECT $1::text, $2::text, $3::text, $4::integer, $5::float8, $6::timestamptz,"
            f" $7::text WHERE {self._kept('$7', '$6')}"
            # a replay fills the pseudonym of a row stored before it existed, nothing else
            " ON CONFLICT (tenant_id, loan_id) DO UPDATE SET member_ref = excluded.member_ref"
            " WHERE l.member_ref IS NULL AND excluded.member_ref IS NOT NULL",
            [
                (
                    x.tenant_id,
                    x.loan_id,
                    x.application_id,
                    x.term_months,
                    x.principal_kes,
                    x.disbursed_at,
                    x.member_ref,
                )
                for x in loans
            ],
        )

    async def add_instalments(self, instalments: Sequence[InstalmentRow]) -> None:
        if not instalments:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.instalments AS i (tenant_id, loan_id, due_date, days_late,"
            " recorded_at, member_ref)"
            " SELECT $1::text, $2::text, $3::timestamptz, $4::integer, $5::timestamptz, $6::text"
            f" WHERE {self._kept('$6', '$5')}"
            " ON CONFLICT (tenant_id, loan_id, due_date) DO UPDATE SET"
            " days_late = excluded.days_late, recorded_at = excluded.recorded_at,"
            " member_ref = coalesce(excluded.member_ref, i.member_ref)"
            " WHERE excluded.recorded_at >= i.recorded_at",
            [
                (x.tenant_id, x.loan_id, x.due_date, x.days_late, x.recorded_at, x.member_ref)
                for x in instalments
            ],
        )

    async def pending(
        self,
        loans: Iterable[tuple[str, str]] | None = None,
        applications: Iterable[tuple[str, str]] = (),
    ) -> list[Pending]:
        """Loans with a decision and no outcome yet: those named (tenant, loan id), those of
        the named (tenant, application id) decisions, or every one when `loans` is None."""
        where = ""
        args: list[object] = []
        if loans is not None:
            pairs = list(loans)
            apps = list(applications)
            where = (
                " AND ((l.tenant_id, l.loan_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
                " OR (l.tenant_id, l.application_id) IN"
                " (SELECT * FROM unnest($3::text[], $4::text[])))"
            )
            args = [
                [t for t, _ in pairs],
                [x for _, x in pairs],
                [t for t, _ in apps],
                [x for _, x in apps],
            ]
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT l.*, d.decision_id, d.model_version, d.probability_of_default, d.band,"
                f" d.final_band, d.applied_at, d.decided_at, d.member_ref AS decision_member_ref"
                f" FROM {self.s}.loans l"
                f" JOIN {self.s}.decisions d USING (tenant_id, application_id)"
                f" LEFT JOIN {self.s}.outcomes o USING (tenant_id, loan_id)"
                f" WHERE o.loan_id IS NULL{where}",
                *args,
            )
            if not rows:
                return []
            instalments = await conn.fetch(
                f"SELECT tenant_id, loan_id, due_date, days_late, recorded_at"
                f" FROM {self.s}.instalments WHERE (tenant_id, loan_id) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[]))",
                [r["tenant_id"] for r in rows],
                [r["loan_id"] for r in rows],
            )
        by_loan: dict[tuple[str, str], list[Instalment]] = {}
        for i in instalments:
            by_loan.setdefault((i["tenant_id"], i["loan_id"]), []).append(
                Instalment(i["due_date"], i["days_late"], i["recorded_at"])
            )
        return [
            Pending(
                loan=LoanRow(
                    r["tenant_id"],
                    r["loan_id"],
                    r["application_id"],
                    r["term_months"],
                    r["principal_kes"],
                    r["disbursed_at"],
                    r["member_ref"],
                ),
                decision=DecisionRow(
                    r["tenant_id"],
                    r["application_id"],
                    r["decision_id"],
                    r["model_version"],
                    r["probability_of_default"],
                    r["band"],
                    r["applied_at"],
                    r["decided_at"],
                    r["decision_member_ref"],
                ),
                final_band=r["final_band"],
                instalments=by_loan.get((r["tenant_id"], r["loan_id"]), []),
            )
            for r in rows
        ]

    async def record(self, pending: Pending, known: Known) -> None:
        """The loan's outcome, once (a second call for the same loan changes nothing)."""
        d, loan = pending.decision, pending.loan
        await self.pool.execute(
            f"INSERT INTO {self.s}.outcomes (tenant_id, loan_id, application_id, decision_id,"
            " model_version, defaulted, outcome_at, max_days_late, instalments_observed,"
            " probability_of_default, band, final_band, applied_at, disbursed_at, member_ref)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            " ON CONFLICT (tenant_id, loan_id) DO NOTHING",
            loan.tenant_id,
            loan.loan_id,
            loan.application_id,
            d.decision_id,
            d.model_version,
            known.defaulted,
            known.outcome_at,
            known.max_days_late,
            known.instalments_observed,
            d.probability_of_default,
            d.band,
            pending.final_band,
            d.applied_at,
            loan.disbursed_at,
            loan.member_ref or d.member_ref,  # a loan stored before the pseudonyms has none
        )

    async def unpublished(self, limit: int = 10_000) -> list[OutcomeRow]:
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.s}.outcomes WHERE NOT published ORDER BY outcome_at LIMIT $1",
            limit,
        )
        return [_outcome(r) for r in rows]

    async def mark_published(self, loans: Sequence[tuple[str, str]]) -> None:
        if loans:
            await self.pool.execute(
                f"UPDATE {self.s}.outcomes SET published = true WHERE (tenant_id, loan_id) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[]))",
                [t for t, _ in loans],
                [x for _, x in loans],
            )

    async def matured(self, tenant: str | None = None) -> list[OutcomeRow]:
        """Every known outcome (a tenant's, or all), for live performance."""
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.s}.outcomes WHERE $1::text IS NULL OR tenant_id = $1",
            tenant,
        )
        return [_outcome(r) for r in rows]

    async def declined_without_loan(self) -> list[tuple[str, str, int]]:
        """Per tenant and bundle, the decisions that ended in a decline and no loan: their
        outcome is never observed (reject inference's open question), counted, not dropped."""
        rows = await self.pool.fetch(
            f"SELECT d.tenant_id, d.model_version, count(*) AS n FROM {self.s}.decisions d"
            f" LEFT JOIN {self.s}.loans l USING (tenant_id, application_id)"
            f" WHERE l.loan_id IS NULL AND coalesce(d.final_band, d.band) = {DECLINE}"
            " GROUP BY d.tenant_id, d.model_version"  # the literal matches decisions_declined's
        )
        return [(r["tenant_id"], r["model_version"], r["n"]) for r in rows]

    async def add_shadow_decisions(self, decisions: Sequence[DecisionRow]) -> None:
        """The challenger's decisions; per application and bundle the latest stands."""
        if not decisions:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.shadow_decisions AS x (tenant_id, application_id,"
            " model_version, decision_id, probability_of_default, band, decided_at, applied_at,"
            " member_ref)"
            " SELECT $1::text, $2::text, $3::text, $4::text, $5::float8, $6::smallint,"
            " $7::timestamptz, $8::timestamptz, $9::text"
            f" WHERE {self._kept('$9', 'coalesce($8, $7)')}"
            " ON CONFLICT (tenant_id, application_id, model_version) DO UPDATE SET"
            " decision_id = excluded.decision_id,"
            " probability_of_default = excluded.probability_of_default, band = excluded.band,"
            " decided_at = excluded.decided_at, applied_at = excluded.applied_at,"
            " member_ref = coalesce(excluded.member_ref, x.member_ref)"
            " WHERE excluded.decided_at >= x.decided_at",
            [
                (
                    d.tenant_id,
                    d.application_id,
                    d.model_version,
                    d.decision_id,
                    d.probability_of_default,
                    d.band,
                    d.decided_at,
                    d.applied_at,
                    d.member_ref,
                )
                for d in decisions
            ],
        )

    async def add_applicant_groups(self, groups: Sequence[ApplicantGroups]) -> None:
        if not groups:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.applicant_groups AS g (tenant_id, application_id, gender,"
            " age_band, applied_at, member_ref)"
            " SELECT $1::text, $2::text, $3::text, $4::text, $5::timestamptz, $6::text"
            f" WHERE {self._kept('$6', '$5')}"
            " ON CONFLICT (tenant_id, application_id) DO UPDATE SET"
            " gender = excluded.gender, age_band = excluded.age_band,"
            " applied_at = coalesce(excluded.applied_at, g.applied_at),"
            " member_ref = coalesce(excluded.member_ref, g.member_ref)",
            [
                (g.tenant_id, g.application_id, g.gender, g.age_band, g.applied_at, g.member_ref)
                for g in groups
            ],
        )

    async def shadow_pairs(
        self, challenger: str | None = None, tenant: str | None = None
    ) -> list[ShadowPair]:
        """Every application the champion decided and a challenger scored in shadow (one
        challenger's, a tenant's, or all), with its outcome where its loan matured."""
        rows = await self.pool.fetch(_PAIRS_SQL.format(s=self.s), challenger, tenant)
        return [
            ShadowPair(
                tenant_id=r["tenant_id"],
                application_id=r["application_id"],
                champion=r["champion"],
                challenger=r["challenger"],
                champion_pd=r["champion_pd"],
                challenger_pd=r["challenger_pd"],
                champion_band=BANDS.name_or(r["champion_band"], "unknown"),
                challenger_band=BANDS.name_or(r["challenger_band"], "unknown"),
                gender=r["gender"],
                age_band=r["age_band"],
                defaulted=r["defaulted"],
            )
            for r in rows
        ]

    async def add_performance_alerts(self, alerts: Sequence[PerformanceAlertRow]) -> None:
        """Alerts raised; one per (bundle, month, metric) ever, the first one raised stands."""
        if not alerts:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.performance_alerts (model_version, month, metric, alert_id,"
            " value, reference, threshold, loans, raised_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (model_version, month, metric) DO NOTHING",
            [
                (
                    a.model_version,
                    a.month,
                    a.metric,
                    a.alert_id,
                    a.value,
                    a.reference,
                    a.threshold,
                    a.loans,
                    a.raised_at,
                )
                for a in alerts
            ],
        )

    async def unpublished_alerts(self) -> list[PerformanceAlertRow]:
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.s}.performance_alerts WHERE NOT published ORDER BY raised_at"
        )
        return [
            PerformanceAlertRow(
                model_version=r["model_version"],
                month=r["month"],
                metric=r["metric"],
                alert_id=r["alert_id"],
                value=r["value"],
                reference=r["reference"],
                threshold=r["threshold"],
                loans=r["loans"],
                raised_at=r["raised_at"],
            )
            for r in rows
        ]

    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None:
        if alert_ids:
            await self.pool.execute(
                f"UPDATE {self.s}.performance_alerts SET published = true"
                " WHERE alert_id = ANY($1::text[])",
                list(alert_ids),
            )

    # --- members' rights (services.outcomes.member_data) ---------------------------------------

    def _member(self, tenant: str, member_id: str) -> str:
        ref = self.ref(tenant, member_id)
        if ref is None:
            raise RuntimeError("members' rights need the member pseudonym key (member_ref)")
        return ref

    async def holds_member(self, tenant: str, member_id: str) -> bool:
        ref = self._member(tenant, member_id)
        held = " UNION ALL ".join(
            f"(SELECT 1 FROM {self.s}.{table} WHERE member_ref = $1 AND tenant_id = $2 LIMIT 1)"
            for table in MEMBER_TABLES
        )
        return bool(await self.pool.fetchval(f"SELECT EXISTS ({held})", ref, tenant))

    async def file_under_members(self, applications: Sequence[tuple[str, str, str]]) -> int:
        """Give rows stored before rows carried pseudonyms their member's: `applications` are
        (tenant, application id, pseudonym) triples (from a store that keeps member ids); every
        row of those applications, their loans and the loans' instalments that has none gets
        it. Idempotent; returns the rows filed."""
        if not applications:
            return 0
        args = (
            [t for t, _, _ in applications],
            [a for _, a, _ in applications],
            [r for _, _, r in applications],
        )
        filed = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for table in ("decisions", "shadow_decisions", "applicant_groups", "loans", "outcomes"):
                status = await conn.execute(
                    f"UPDATE {self.s}.{table} x SET member_ref = m.ref"
                    " FROM unnest($1::text[], $2::text[], $3::text[]) AS m(tenant, app, ref)"
                    " WHERE x.tenant_id = m.tenant AND x.application_id = m.app"
                    " AND x.member_ref IS NULL",
                    *args,
                )
                filed += int(status.split()[-1])
            status = await conn.execute(
                f"UPDATE {self.s}.instalments i SET member_ref = l.member_ref"
                f" FROM {self.s}.loans l"
                " JOIN unnest($1::text[], $2::text[]) AS m(tenant, app)"
                " ON l.tenant_id = m.tenant AND l.application_id = m.app"
                " WHERE i.tenant_id = l.tenant_id AND i.loan_id = l.loan_id"
                " AND i.member_ref IS NULL AND l.member_ref IS NOT NULL",
                args[0],
                args[1],
            )
            filed += int(status.split()[-1])
        return filed

    async def _member_keys(
        self, conn: asyncpg.Connection, ref: str, tenant: str, at: datetime | None
    ) -> tuple[list[str], list[str]]:
        row = await conn.fetchrow(_MEMBER_KEYS.format(s=self.s), ref, tenant, at)
        return list(row["apps"]), list(row["loans"])

    async def member_data(self, tenant: str, member_id: str) -> dict[str, Any]:
        """Every row kept on the member, by table: its applications' and loans' (bands by name,
        times as ISO text; the pseudonym rows are filed under is not part of the member's
        data)."""
        ref = self._member(tenant, member_id)
        data: dict[str, Any] = {}
        async with self.pool.acquire() as conn:
            apps, loans = await self._member_keys(conn, ref, tenant, None)
            for table in reversed(MEMBER_TABLES):
                order = "loan_id, due_date" if table == "instalments" else "application_id"
                where, args = _of_member(table, apps, loans)
                rows = await conn.fetch(
                    f"SELECT * FROM {self.s}.{table}"
                    f" WHERE tenant_id = $1 AND ({where}) ORDER BY {order}",
                    tenant,
                    *args,
                )
                data[table] = [_plain(dict(r)) for r in rows]
        return data

    async def erase_member(
        self, tenant: str, member_id: str, erased_at: datetime | None = None
    ) -> int:
        """Delete, in one transaction, the member's applications in the tenant made at or
        before `erased_at` (all of them when None) with everything derived from them (decisions,
        shadow decisions, groups, loans, instalments, outcomes, whether or not each row carries
        the pseudonym), and the loans and instalments filed under the member's pseudonym by then;
        remember the erasure (pseudonym and time) so a replay or a late backlog does not store
        them again. Returns the rows deleted.

        Dated at the request, not when this store got to it: what the member sent after asking
        (a new application, a loan disbursed later) is theirs to keep."""
        ref = self._member(tenant, member_id)
        deleted = 0
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {self.s}.erased_members (member_ref, erased_at) VALUES ($1, $2)"
                " ON CONFLICT (member_ref)"
                " DO UPDATE SET erased_at = greatest(erased_members.erased_at, $2)",
                ref,
                erased_at or datetime.now(UTC),
            )
            apps, loans = await self._member_keys(conn, ref, tenant, erased_at)
            for table in MEMBER_TABLES:
                where, args = _of_member(table, apps, loans)
                status = await conn.execute(
                    f"DELETE FROM {self.s}.{table} WHERE tenant_id = $1 AND ({where})",
                    tenant,
                    *args,
                )
                deleted += int(status.split()[-1])
        return deleted


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the member's export carries it."""
    row.pop("member_ref", None)
    row.pop("published", None)  # the service's bookkeeping, not the member's data
    for band in ("band", "final_band"):
        if band in row and row[band] is not None:
            row[band] = BANDS.name_or(row[band], "unknown")
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


_PAIRS_SQL = """
SELECT s.tenant_id, s.application_id, d.model_version AS champion, s.model_version AS challenger,
       d.probability_of_default AS champion_pd, s.probability_of_default AS challenger_pd,
       d.band AS champion_band, s.band AS challenger_band,
       coalesce(g.gender, '') AS gender, coalesce(g.age_band, '') AS age_band, o.defaulted
FROM {s}.shadow_decisions s
JOIN {s}.decisions d USING (tenant_id, application_id)
LEFT JOIN {s}.applicant_groups g USING (tenant_id, application_id)
LEFT JOIN LATERAL (
    SELECT o.defaulted FROM {s}.outcomes o
    WHERE o.tenant_id = s.tenant_id AND o.application_id = s.application_id
    ORDER BY o.loan_id LIMIT 1
) o ON true
WHERE ($1::text IS NULL OR s.model_version = $1) AND ($2::text IS NULL OR s.tenant_id = $2)
ORDER BY s.tenant_id, s.application_id, s.model_version
"""


def _outcome(r: asyncpg.Record) -> OutcomeRow:
    return OutcomeRow(
        tenant_id=r["tenant_id"],
        loan_id=r["loan_id"],
        application_id=r["application_id"],
        decision_id=r["decision_id"],
        model_version=r["model_version"],
        defaulted=r["defaulted"],
        outcome_at=r["outcome_at"],
        max_days_late=r["max_days_late"],
        instalments_observed=r["instalments_observed"],
        probability_of_default=r["probability_of_default"],
        band=r["band"],
        final_band=r["final_band"],
        applied_at=r["applied_at"],
        disbursed_at=r["disbursed_at"],
    )
