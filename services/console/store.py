"""The console's own tables in PostgreSQL (asyncpg): people and their sessions, the applications
and decisions it has seen on the topics, the review queue and every action taken on it.

The console reads other services only through their contracts (the topics it consumes, the
explanation service's gRPC); these tables are its own. Inserts from the topics ignore rows
already there, so a replayed batch changes nothing. Every state change of a queue item is a
conditional UPDATE on the state it expects, so two people can never hold or settle one item.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewKind

#: the prefix of a sealed ID token as the sessions table stores it (the version of the sealing,
#: `people.seal_id_token`); the schema step clears any other value
SEALED_PREFIX = "sealed-v1:"

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.accounts (
    account_id uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    username text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL,
    password_hash text NOT NULL,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, username)
);
-- people who sign in through the identity provider have its subject and no password
ALTER TABLE {s}.accounts ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE {s}.accounts ADD COLUMN IF NOT EXISTS oidc_subject text;
ALTER TABLE {s}.accounts ADD COLUMN IF NOT EXISTS last_sign_in timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS accounts_oidc_subject
    ON {s}.accounts (tenant_id, oidc_subject) WHERE oidc_subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.account_actions (
    action_id bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    account_id uuid NOT NULL REFERENCES {s}.accounts (account_id) ON DELETE CASCADE,
    actor_id uuid,
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{{}}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS account_actions_tenant ON {s}.account_actions (tenant_id, at);
CREATE TABLE IF NOT EXISTS {s}.sessions (
    token_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES {s}.accounts (account_id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
-- an identity-provider sign-in's ID token, the id_token_hint of the sign-out at the IdP, sealed
-- under the session token (people.seal_id_token): this table cannot open it
ALTER TABLE {s}.sessions ADD COLUMN IF NOT EXISTS id_token text;
-- what versions before the sealing stored in plain text is dropped (only the IdP's hint is lost)
UPDATE {s}.sessions SET id_token = NULL
    WHERE id_token IS NOT NULL AND id_token NOT LIKE '{sealed}%';
CREATE TABLE IF NOT EXISTS {s}.applications (
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    member_id text NOT NULL,
    product integer NOT NULL,
    amount_kes double precision NOT NULL,
    term_months integer NOT NULL,
    channel integer NOT NULL,
    declared_monthly_income_kes double precision NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, application_id)
);
ALTER TABLE {s}.applications ADD COLUMN IF NOT EXISTS gender text NOT NULL DEFAULT '';
ALTER TABLE {s}.applications ADD COLUMN IF NOT EXISTS age_band text NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS {s}.loan_outcomes (
    tenant_id text NOT NULL,
    loan_id text NOT NULL,
    application_id text NOT NULL,
    decision_id text NOT NULL,
    model_version text NOT NULL,
    defaulted boolean NOT NULL,
    band smallint NOT NULL,
    final_band smallint NOT NULL,
    probability_of_default double precision NOT NULL,
    outcome_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, loan_id)
);
CREATE INDEX IF NOT EXISTS loan_outcomes_application
    ON {s}.loan_outcomes (tenant_id, application_id);
CREATE TABLE IF NOT EXISTS {s}.decisions (
    decision_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    application_id text NOT NULL,
    member_id text NOT NULL,
    model_version text NOT NULL,
    band integer NOT NULL,
    score integer NOT NULL,
    probability_of_default double precision NOT NULL,
    decided_at timestamptz NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_tenant_time ON {s}.decisions (tenant_id, decided_at);
CREATE INDEX IF NOT EXISTS decisions_tenant_score ON {s}.decisions (tenant_id, score);
CREATE TABLE IF NOT EXISTS {s}.items (
    decision_id text PRIMARY KEY REFERENCES {s}.decisions (decision_id) ON DELETE CASCADE,
    tenant_id text NOT NULL,
    kind integer NOT NULL,
    appeal_id text NOT NULL DEFAULT '',
    entered_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'open',
    claimed_by uuid,
    claimed_at timestamptz,
    proposal jsonb,
    proposed_by uuid,
    review_id text,
    final_band integer,
    closed_at timestamptz
);
CREATE INDEX IF NOT EXISTS items_queue ON {s}.items (tenant_id, state, entered_at);
CREATE TABLE IF NOT EXISTS {s}.actions (
    action_id bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    decision_id text NOT NULL,
    account_id uuid,
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{{}}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS actions_item ON {s}.actions (decision_id, at);
CREATE INDEX IF NOT EXISTS decisions_member ON {s}.decisions (tenant_id, member_id);
CREATE INDEX IF NOT EXISTS applications_member ON {s}.applications (tenant_id, member_id);
CREATE TABLE IF NOT EXISTS {s}.erased_members (
    member_ref text PRIMARY KEY,
    erased_at timestamptz NOT NULL
);
"""

#: queue states: open -> claimed -> (closed | awaiting_second -> second_claimed -> closed)
OPEN, CLAIMED, AWAITING_SECOND, SECOND_CLAIMED, CLOSED = (
    "open",
    "claimed",
    "awaiting_second",
    "second_claimed",
    "closed",
)


@dataclass(frozen=True)
class Account:
    account_id: uuid.UUID
    tenant_id: str
    username: str
    display_name: str
    role: str
    password_hash: str | None  # None: signs in through the identity provider only
    failed_logins: int
    locked_until: datetime | None
    disabled: bool
    oidc_subject: str | None = None
    last_sign_in: datetime | None = None

    @property
    def signs_in_with(self) -> str:
        return "identity provider" if self.oidc_subject else "password"


@dataclass(frozen=True)
class AccountAction:
    """Who changed an account, when, and how (the admin page's log)."""

    username: str
    actor: str
    action: str
    detail: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Application:
    application_id: str
    product: int
    amount_kes: float
    term_months: int
    channel: int
    declared_monthly_income_kes: float
    applied_at: datetime


@dataclass(frozen=True)
class Item:
    """A queue item with the decision it is about (and the application, when seen)."""

    decision: CreditDecision
    tenant_id: str
    kind: int
    appeal_id: str
    entered_at: datetime
    state: str
    claimed_by: uuid.UUID | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    proposal: dict[str, Any] | None
    proposed_by: uuid.UUID | None
    proposed_by_name: str | None
    final_band: int | None
    closed_at: datetime | None
    application: Application | None

    @property
    def decision_id(self) -> str:
        return self.decision.decision_id

    def age(self, now: datetime) -> timedelta:
        return now - self.entered_at


@dataclass(frozen=True)
class Action:
    actor: str
    action: str
    detail: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class QueueStats:
    open_items: int
    oldest_open: datetime | None
    breaching: int


class ConsoleStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        member_ref: Callable[[str, str], str] | None = None,
    ) -> None:
        """`member_ref` is the tenant-scoped keyed pseudonym (`member_rights.tenant_member_ref`):
        the key of the erased-members set, so a redelivered event of an erased member is not
        stored again and no raw id outlives an erasure."""
        self.pool = pool
        self.s = schema
        self.member_ref = member_ref

    async def create_schema(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(SCHEMA_SQL.format(s=self.s, sealed=SEALED_PREFIX))

    # --- people ------------------------------------------------------------------------------

    async def add_account(
        self,
        *,
        tenant: str,
        username: str,
        display_name: str,
        role: str,
        password_hash: str | None,
        oidc_subject: str | None = None,
        actor: Account | None = None,
    ) -> uuid.UUID | None:
        """A new account; None when the tenant has that user name (or IdP subject) already.
        With `actor` (an administrator), the addition is logged as theirs."""
        account_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"INSERT INTO {self.s}.accounts (account_id, tenant_id, username, display_name,"
                " role, password_hash, oidc_subject) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT DO NOTHING RETURNING account_id",
                account_id,
                tenant,
                username,
                display_name,
                role,
                password_hash,
                oidc_subject,
            )
            if row is None:
                return None
            if actor is not None:
                await self._account_act(conn, tenant, account_id, actor, "add", {"role": role})
        return account_id

    async def account_by_id(self, tenant: str, account_id: uuid.UUID) -> Account | None:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {self.s}.accounts WHERE tenant_id = $1 AND account_id = $2",
            tenant,
            account_id,
        )
        return _account(row) if row else None

    async def account_by_subject(self, tenant: str, subject: str) -> Account | None:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {self.s}.accounts WHERE tenant_id = $1 AND oidc_subject = $2",
            tenant,
            subject,
        )
        return _account(row) if row else None

    async def update_from_idp(
        self, account_id: uuid.UUID, *, role: str, display_name: str
    ) -> Account:
        """The role and name the identity provider gives at this sign-in; a changed role is
        logged with the IdP as its actor."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow(
                f"SELECT role FROM {self.s}.accounts WHERE account_id = $1 FOR UPDATE",
                account_id,
            )
            row = await conn.fetchrow(
                f"UPDATE {self.s}.accounts SET role = $2, display_name = $3"
                " WHERE account_id = $1 RETURNING *",
                account_id,
                role,
                display_name,
            )
            if before["role"] != role:
                await conn.execute(
                    f"INSERT INTO {self.s}.account_actions (tenant_id, account_id, actor_id,"
                    " actor, action, detail) VALUES ($1, $2, NULL, 'identity provider',"
                    " 'role', $3::jsonb)",
                    row["tenant_id"],
                    account_id,
                    json.dumps({"from": before["role"], "to": role}),
                )
        return _account(row)

    async def set_role(self, tenant: str, account_id: uuid.UUID, role: str, actor: Account) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(
                f"SELECT role FROM {self.s}.accounts WHERE tenant_id = $1 AND account_id = $2"
                " FOR UPDATE",
                tenant,
                account_id,
            )
            if before is None:
                return False
            await conn.execute(
                f"UPDATE {self.s}.accounts SET role = $2 WHERE account_id = $1", account_id, role
            )
            await self._account_act(
                conn, tenant, account_id, actor, "role", {"from": before, "to": role}
            )
            return True

    async def set_disabled(
        self, tenant: str, account_id: uuid.UUID, disabled: bool, actor: Account
    ) -> bool:
        """Disable (ending every session of the account) or enable it again."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                f"UPDATE {self.s}.accounts SET disabled = $3"
                " WHERE tenant_id = $1 AND account_id = $2",
                tenant,
                account_id,
                disabled,
            )
            if not done.endswith(" 1"):
                return False
            if disabled:
                await conn.execute(
                    f"DELETE FROM {self.s}.sessions WHERE account_id = $1", account_id
                )
            action = "disable" if disabled else "enable"
            await self._account_act(conn, tenant, account_id, actor, action, {})
            return True

    async def account_actions(self, tenant: str, limit: int = 50) -> list[AccountAction]:
        rows = await self.pool.fetch(
            f"SELECT a.username, x.actor, x.action, x.detail, x.at"
            f" FROM {self.s}.account_actions x JOIN {self.s}.accounts a USING (account_id)"
            " WHERE x.tenant_id = $1 ORDER BY x.at DESC, x.action_id DESC LIMIT $2",
            tenant,
            limit,
        )
        return [
            AccountAction(r["username"], r["actor"], r["action"], json.loads(r["detail"]), r["at"])
            for r in rows
        ]

    async def _account_act(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        account_id: uuid.UUID,
        actor: Account,
        action: str,
        detail: dict[str, Any],
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.s}.account_actions (tenant_id, account_id, actor_id, actor,"
            " action, detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            tenant,
            account_id,
            actor.account_id,
            actor.username,
            action,
            json.dumps(detail),
        )

    async def account(self, tenant: str, username: str) -> Account | None:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {self.s}.accounts WHERE tenant_id = $1 AND username = $2",
            tenant,
            username,
        )
        return _account(row) if row else None

    async def accounts(self, tenant: str) -> list[Account]:
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.s}.accounts WHERE tenant_id = $1 ORDER BY username", tenant
        )
        return [_account(r) for r in rows]

    async def record_failed_login(
        self, account_id: uuid.UUID, *, limit: int, lock_for: timedelta
    ) -> bool:
        """Count a failed sign-in; lock the account at `limit` failures. True when locked."""
        row = await self.pool.fetchrow(
            f"UPDATE {self.s}.accounts SET failed_logins = failed_logins + 1,"
            " locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + $3::interval"
            " ELSE locked_until END"
            " WHERE account_id = $1 RETURNING locked_until",
            account_id,
            limit,
            lock_for,
        )
        return bool(row and row["locked_until"] and row["locked_until"] > datetime.now(UTC))

    async def record_login(self, account_id: uuid.UUID) -> None:
        await self.pool.execute(
            f"UPDATE {self.s}.accounts SET failed_logins = 0, locked_until = NULL,"
            " last_sign_in = now() WHERE account_id = $1",
            account_id,
        )

    async def unlock(
        self, tenant: str, account_id: uuid.UUID, actor: Account | None = None
    ) -> bool:
        """Clear the failed sign-ins; with `actor` (an administrator), logged as theirs."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                f"UPDATE {self.s}.accounts SET failed_logins = 0, locked_until = NULL"
                " WHERE account_id = $1 AND tenant_id = $2",
                account_id,
                tenant,
            )
            if not done.endswith(" 1"):
                return False
            if actor is not None:
                await self._account_act(conn, tenant, account_id, actor, "unlock", {})
            return True

    async def set_password(self, account_id: uuid.UUID, password_hash: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE {self.s}.accounts SET password_hash = $2 WHERE account_id = $1",
                account_id,
                password_hash,
            )
            await conn.execute(
                f"DELETE FROM {self.s}.sessions WHERE account_id = $1", account_id
            )  # a new password signs out every session

    async def create_session(
        self,
        token_hash: bytes,
        account_id: uuid.UUID,
        csrf_token: str,
        expires_at: datetime,
        id_token: str | None = None,
    ) -> None:
        """`id_token`: the sealed ID token of an identity-provider sign-in (None for a password
        one)."""
        now = datetime.now(UTC)
        await self.pool.execute(
            f"INSERT INTO {self.s}.sessions"
            " (token_hash, account_id, csrf_token, created_at, last_seen, expires_at, id_token)"
            " VALUES ($1, $2, $3, $4, $4, $5, $6)",
            token_hash,
            account_id,
            csrf_token,
            now,
            expires_at,
            id_token,
        )

    async def touch_session(self, token_hash: bytes, idle: timedelta) -> Session | None:
        """The live session of this token, its idle clock restarted; None when expired."""
        row = await self.pool.fetchrow(
            f"UPDATE {self.s}.sessions s SET last_seen = now()"
            f" FROM {self.s}.accounts a"
            " WHERE s.token_hash = $1 AND a.account_id = s.account_id"
            " AND s.expires_at > now() AND s.last_seen > now() - $2::interval AND NOT a.disabled"
            " RETURNING a.*, s.csrf_token, s.expires_at",
            token_hash,
            idle,
        )
        if row is None:
            return None
        return Session(_account(row), row["csrf_token"], row["expires_at"])

    async def end_session(self, token_hash: bytes) -> str | None:
        """Ends the session; the sealed ID token it was opened with, if an identity provider's."""
        id_token: str | None = await self.pool.fetchval(
            f"DELETE FROM {self.s}.sessions WHERE token_hash = $1 RETURNING id_token", token_hash
        )
        return id_token

    async def purge_sessions(self, idle: timedelta) -> int:
        done = await self.pool.execute(
            f"DELETE FROM {self.s}.sessions"
            " WHERE expires_at <= now() OR last_seen <= now() - $1::interval",
            idle,
        )
        return int(done.rsplit(" ", 1)[-1])

    # --- from the topics ---------------------------------------------------------------------

    async def _not_erased(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (tenant, member) pairs not erased (all of them where no key is set)."""
        if self.member_ref is None or not pairs:
            return set(pairs)
        refs = {pair: self.member_ref(*pair) for pair in set(pairs)}
        erased = {
            r["member_ref"]
            for r in await self.pool.fetch(
                f"SELECT member_ref FROM {self.s}.erased_members WHERE member_ref = ANY($1)",
                list(refs.values()),
            )
        }
        return {pair for pair, ref in refs.items() if ref not in erased}

    async def add_applications(self, applications: Sequence[LoanApplicationSubmitted]) -> None:
        keep = await self._not_erased([(a.tenant_id, a.member_id) for a in applications])
        applications = [a for a in applications if (a.tenant_id, a.member_id) in keep]
        if not applications:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.applications (tenant_id, application_id, member_id, product,"
            " amount_kes, term_months, channel, declared_monthly_income_kes, applied_at,"
            " gender, age_band)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            [
                (
                    a.tenant_id,
                    a.application_id,
                    a.member_id,
                    int(a.product),
                    a.amount_kes,
                    a.term_months,
                    int(a.channel),
                    a.declared_monthly_income_kes,
                    a.applied_at.ToDatetime(tzinfo=UTC),
                    a.attributes.get("gender", "")[:32],
                    a.attributes.get("age_band", "")[:32],
                )
                for a in applications
            ],
        )

    async def add_decisions(self, decisions: Sequence[CreditDecision], entered_at: datetime) -> int:
        """Store decisions; those in band review enter the queue. Returns the new queue items.
        An erased member's decision redelivered from the topic is not stored again."""
        keep = await self._not_erased([(d.tenant_id, d.member_id) for d in decisions])
        decisions = [d for d in decisions if (d.tenant_id, d.member_id) in keep]
        if not decisions:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                f"INSERT INTO {self.s}.decisions (decision_id, tenant_id, application_id,"
                " member_id, model_version, band, score, probability_of_default, decided_at,"
                " payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        d.decision_id,
                        d.tenant_id,
                        d.application_id,
                        d.member_id,
                        d.model_version,
                        int(d.band),
                        d.score,
                        d.probability_of_default,
                        d.decided_at.ToDatetime(tzinfo=UTC),
                        d.SerializeToString(deterministic=True),
                    )
                    for d in decisions
                ],
            )
            review = [d for d in decisions if d.band == DecisionBand.DECISION_BAND_REVIEW]
            if not review:
                return 0
            rows = await conn.fetch(
                f"INSERT INTO {self.s}.items (decision_id, tenant_id, kind, entered_at)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[])"
                " ON CONFLICT DO NOTHING RETURNING decision_id",
                [d.decision_id for d in review],
                [d.tenant_id for d in review],
                [int(ReviewKind.REVIEW_KIND_BAND)] * len(review),
                [entered_at] * len(review),
            )
            return len(rows)

    async def add_appeal(
        self,
        *,
        tenant: str,
        decision_id: str,
        appeal_id: str,
        lodged_by: str,
        channel: str,
        grounds: str,
    ) -> bool | None:
        """A member's appeal puts the decision (back) in the queue as an appeal, its history
        kept. None when the console has not seen the decision; False when this appeal was
        there already (a redelivery); True when the item (re)opened. The decision's row is
        locked first: the console applies its own appeal while its consumer may be applying the
        same event read back from the topic, and only one of them may record it."""
        async with self.pool.acquire() as conn, conn.transaction():
            known = await conn.fetchval(
                f"SELECT 1 FROM {self.s}.decisions WHERE tenant_id = $1 AND decision_id = $2"
                " FOR UPDATE",
                tenant,
                decision_id,
            )
            if known is None:
                return None
            seen = await conn.fetchval(
                f"SELECT 1 FROM {self.s}.actions WHERE tenant_id = $1 AND decision_id = $2"
                " AND action = 'appeal' AND detail->>'appeal_id' = $3",
                tenant,
                decision_id,
                appeal_id,
            )
            if seen:
                return False
            kind = int(ReviewKind.REVIEW_KIND_APPEAL)
            await conn.execute(
                f"INSERT INTO {self.s}.items (decision_id, tenant_id, kind, appeal_id, entered_at)"
                " VALUES ($1, $2, $3, $4, now())"
                " ON CONFLICT (decision_id) DO UPDATE SET kind = $3, appeal_id = $4,"
                " entered_at = CASE WHEN items.state = 'closed' THEN now()"
                "   ELSE items.entered_at END,"
                " state = CASE WHEN items.state = 'closed' THEN 'open' ELSE items.state END,"
                " claimed_by = CASE WHEN items.state = 'closed' THEN NULL"
                "   ELSE items.claimed_by END,"
                " proposal = CASE WHEN items.state = 'closed' THEN NULL ELSE items.proposal END,"
                " proposed_by = CASE WHEN items.state = 'closed' THEN NULL"
                "   ELSE items.proposed_by END,"
                " closed_at = NULL, final_band = CASE WHEN items.state = 'closed' THEN NULL"
                "   ELSE items.final_band END",
                decision_id,
                tenant,
                kind,
                appeal_id,
            )
            await conn.execute(
                f"INSERT INTO {self.s}.actions (tenant_id, decision_id, account_id, actor, action,"
                " detail) VALUES ($1, $2, NULL, $3, 'appeal', $4::jsonb)",
                tenant,
                decision_id,
                lodged_by,
                json.dumps({"appeal_id": appeal_id, "channel": channel, "why": grounds}),
            )
            return True

    async def decision(self, tenant: str, decision_id: str) -> CreditDecision | None:
        payload = await self.pool.fetchval(
            f"SELECT payload FROM {self.s}.decisions WHERE tenant_id = $1 AND decision_id = $2",
            tenant,
            decision_id,
        )
        if payload is None:
            return None
        decision = CreditDecision()
        decision.ParseFromString(payload)
        return decision

    async def find_decision(self, tenant: str, application_id: str) -> str | None:
        """The latest decision id of an application in the tenant."""
        value = await self.pool.fetchval(
            f"SELECT decision_id FROM {self.s}.decisions WHERE tenant_id = $1"
            " AND application_id = $2 ORDER BY decided_at DESC LIMIT 1",
            tenant,
            application_id,
        )
        return None if value is None else str(value)

    # --- members' rights (services.common.member_rights) -------------------------------------

    async def holds_member(self, tenant: str, member_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {self.s}.decisions WHERE tenant_id = $1"
                f" AND member_id = $2) OR EXISTS (SELECT 1 FROM {self.s}.applications"
                " WHERE tenant_id = $1 AND member_id = $2)",
                tenant,
                member_id,
            )
        )

    async def member_data(self, tenant: str, member_id: str) -> dict[str, Any]:
        """Everything the console holds on the member: applications (with the protected
        attributes core banking sent), decisions, review items and every action on them."""
        async with self.pool.acquire() as conn:
            applications = await conn.fetch(
                f"SELECT * FROM {self.s}.applications WHERE tenant_id = $1 AND member_id = $2"
                " ORDER BY applied_at",
                tenant,
                member_id,
            )
            decisions = await conn.fetch(
                f"SELECT d.decision_id, d.application_id, d.model_version, d.band, d.score,"
                " d.probability_of_default, d.decided_at, i.kind, i.state, i.final_band,"
                f" i.closed_at FROM {self.s}.decisions d LEFT JOIN {self.s}.items i"
                " USING (decision_id) WHERE d.tenant_id = $1 AND d.member_id = $2"
                " ORDER BY d.decided_at",
                tenant,
                member_id,
            )
            actions = await conn.fetch(
                f"SELECT a.decision_id, a.actor, a.action, a.detail, a.at"
                f" FROM {self.s}.actions a JOIN {self.s}.decisions d USING (decision_id)"
                " WHERE d.tenant_id = $1 AND d.member_id = $2 ORDER BY a.at, a.action_id",
                tenant,
                member_id,
            )
        return {
            "applications": [_plain(dict(r)) for r in applications],
            "decisions": [_plain(dict(r)) for r in decisions],
            "review_actions": [
                _plain(dict(r) | {"detail": json.loads(r["detail"])}) for r in actions
            ],
        }

    async def erase_member(self, tenant: str, member_id: str) -> int:
        """Delete the member's applications, decisions, review items and actions in the
        tenant, and remember the erasure by pseudonym where a key is set. Returns the rows
        deleted."""
        async with self.pool.acquire() as conn, conn.transaction():
            if self.member_ref is not None:
                await conn.execute(
                    f"INSERT INTO {self.s}.erased_members (member_ref, erased_at)"
                    " VALUES ($1, now()) ON CONFLICT (member_ref) DO UPDATE"
                    " SET erased_at = now()",
                    self.member_ref(tenant, member_id),
                )
            outcomes = await conn.execute(
                f"DELETE FROM {self.s}.loan_outcomes o USING {self.s}.applications a"
                " WHERE o.tenant_id = a.tenant_id AND o.application_id = a.application_id"
                " AND a.tenant_id = $1 AND a.member_id = $2",
                tenant,
                member_id,
            )
            actions = await conn.execute(
                f"DELETE FROM {self.s}.actions a USING {self.s}.decisions d"
                " WHERE a.decision_id = d.decision_id AND d.tenant_id = $1 AND d.member_id = $2",
                tenant,
                member_id,
            )
            decisions = await conn.execute(  # their items go by cascade
                f"DELETE FROM {self.s}.decisions WHERE tenant_id = $1 AND member_id = $2",
                tenant,
                member_id,
            )
            applications = await conn.execute(
                f"DELETE FROM {self.s}.applications WHERE tenant_id = $1 AND member_id = $2",
                tenant,
                member_id,
            )
        return sum(
            int(status.split()[-1]) for status in (outcomes, actions, decisions, applications)
        )

    # --- oversight -------------------------------------------------------------------------

    async def bands_by_day(self, tenant: str, days: int) -> list[Any]:
        """Decisions per day and band (the model's), the last `days` days."""
        return list(
            await self.pool.fetch(
                f"SELECT date_trunc('day', decided_at) AS day, band, count(*) AS n"
                f" FROM {self.s}.decisions WHERE tenant_id = $1"
                " AND decided_at >= now() - make_interval(days => $2)"
                " GROUP BY 1, 2 ORDER BY 1, 2",
                tenant,
                days,
            )
        )

    async def outcomes_by_group(self, tenant: str, attribute: str, days: int) -> list[Any]:
        """Per group of a protected attribute (from the applications, never the model): the
        decisions whose outcome stands (a review's band over the model's; those still in
        review left out) and how many were approved."""
        column = {"gender": "a.gender", "age_band": "a.age_band"}[attribute]
        return list(
            await self.pool.fetch(
                f"SELECT {column} AS grp, count(*) AS n,"
                " count(*) FILTER (WHERE coalesce(i.final_band, d.band) = 1) AS approved"
                f" FROM {self.s}.decisions d"
                f" JOIN {self.s}.applications a"
                "   ON a.tenant_id = d.tenant_id AND a.application_id = d.application_id"
                f" LEFT JOIN {self.s}.items i USING (decision_id)"
                " WHERE d.tenant_id = $1 AND d.decided_at >= now() - make_interval(days => $2)"
                f" AND {column} <> ''"
                " AND (i.decision_id IS NULL OR i.state = 'closed')"
                " GROUP BY 1 ORDER BY 1",
                tenant,
                days,
            )
        )

    async def add_loan_outcomes(self, outcomes: Sequence[LoanOutcome]) -> None:
        """How approved loans turned out (from the outcomes service); once per loan."""
        if not outcomes:
            return
        await self.pool.executemany(
            f"INSERT INTO {self.s}.loan_outcomes (tenant_id, loan_id, application_id,"
            " decision_id, model_version, defaulted, band, final_band, probability_of_default,"
            " outcome_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (tenant_id, loan_id) DO NOTHING",
            [
                (
                    o.tenant_id,
                    o.loan_id,
                    o.application_id,
                    o.decision_id,
                    o.model_version,
                    o.defaulted,
                    int(o.band),
                    int(o.final_band or o.band),
                    o.probability_of_default,
                    o.outcome_at.ToDatetime(tzinfo=UTC),
                )
                for o in outcomes
            ],
        )

    async def opportunity_by_group(self, tenant: str, attribute: str) -> list[Any]:
        """Per group of a protected attribute, on matured loans: the good borrowers (no
        default) and how many of them the model itself put in the approve band. Only disbursed
        loans have outcomes (a decline's is never seen): the equal-opportunity gap of the
        model's recommendation among those, not of the lender's approvals."""
        column = {"gender": "a.gender", "age_band": "a.age_band"}[attribute]
        return list(
            await self.pool.fetch(
                f"SELECT {column} AS grp, count(*) FILTER (WHERE NOT o.defaulted) AS good,"
                " count(*) FILTER (WHERE NOT o.defaulted AND o.band = $2) AS approved,"
                " count(*) AS matured"
                f" FROM {self.s}.loan_outcomes o JOIN {self.s}.applications a"
                "   ON a.tenant_id = o.tenant_id AND a.application_id = o.application_id"
                f" WHERE o.tenant_id = $1 AND {column} <> '' GROUP BY 1 ORDER BY 1",
                tenant,
                int(DecisionBand.DECISION_BAND_APPROVE),
            )
        )

    # --- the queue ---------------------------------------------------------------------------

    async def queue(
        self, tenant: str, *, states: Sequence[str], limit: int, offset: int = 0
    ) -> list[Item]:
        rows = await self.pool.fetch(
            f"{self._item_select()} WHERE i.tenant_id = $1 AND i.state = ANY($2::text[])"
            " ORDER BY i.entered_at, i.decision_id LIMIT $3 OFFSET $4",
            tenant,
            list(states),
            limit,
            offset,
        )
        return [_item(r) for r in rows]

    async def item(self, tenant: str, decision_id: str) -> Item | None:
        row = await self.pool.fetchrow(
            f"{self._item_select()} WHERE i.tenant_id = $1 AND i.decision_id = $2",
            tenant,
            decision_id,
        )
        return _item(row) if row else None

    async def stats(self, tenant: str | None, sla: timedelta) -> list[tuple[str, QueueStats]]:
        rows = await self.pool.fetch(
            f"SELECT tenant_id, count(*) AS open_items, min(entered_at) AS oldest,"
            " count(*) FILTER (WHERE entered_at < now() - $2::interval) AS breaching"
            f" FROM {self.s}.items WHERE state <> 'closed' AND ($1::text IS NULL OR tenant_id = $1)"
            " GROUP BY tenant_id",
            tenant,
            sla,
        )
        return [
            (r["tenant_id"], QueueStats(r["open_items"], r["oldest"], r["breaching"])) for r in rows
        ]

    async def claim(
        self, tenant: str, decision_id: str, account: Account, *, claim_ttl: timedelta
    ) -> Item | None:
        """Hold an item for `account`: an open one (or one whose claim lapsed), or one waiting
        for its second person when `account` did not propose it. None when it can't be held."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE {self.s}.items SET claimed_by = $3, claimed_at = now(),"
                " state = CASE WHEN state IN ('open', 'claimed') THEN 'claimed'"
                " ELSE 'second_claimed' END"
                " WHERE tenant_id = $1 AND decision_id = $2 AND ("
                "   state = 'open'"
                "   OR (state = 'claimed'"
                "       AND (claimed_by = $3 OR claimed_at < now() - $4::interval))"
                "   OR (state = 'awaiting_second' AND proposed_by <> $3)"
                "   OR (state = 'second_claimed' AND proposed_by <> $3"
                "       AND (claimed_by = $3 OR claimed_at < now() - $4::interval)))"
                " RETURNING state",
                tenant,
                decision_id,
                account.account_id,
                claim_ttl,
            )
            if row is None:
                return None
            await self._act(conn, tenant, decision_id, account, "claim", {"state": row["state"]})
        return await self.item(tenant, decision_id)

    async def release(self, tenant: str, decision_id: str, account: Account) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE {self.s}.items SET claimed_by = NULL, claimed_at = NULL,"
                " state = CASE WHEN state = 'claimed' THEN 'open' ELSE 'awaiting_second' END"
                " WHERE tenant_id = $1 AND decision_id = $2 AND claimed_by = $3"
                " AND state IN ('claimed', 'second_claimed') RETURNING state",
                tenant,
                decision_id,
                account.account_id,
            )
            if row is None:
                return False
            await self._act(conn, tenant, decision_id, account, "release", {})
            return True

    async def propose(
        self, tenant: str, decision_id: str, account: Account, proposal: dict[str, Any]
    ) -> bool:
        """Leave an outcome for a second person to confirm (four eyes)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE {self.s}.items SET state = 'awaiting_second', proposal = $4::jsonb,"
                " proposed_by = $3, claimed_by = NULL, claimed_at = NULL"
                " WHERE tenant_id = $1 AND decision_id = $2 AND claimed_by = $3"
                " AND state = 'claimed' RETURNING decision_id",
                tenant,
                decision_id,
                account.account_id,
                json.dumps(proposal),
            )
            if row is None:
                return False
            await self._act(conn, tenant, decision_id, account, "propose", proposal)
            return True

    async def send_back(self, tenant: str, decision_id: str, account: Account, why: str) -> bool:
        """The second person disagrees: the item goes back to the queue without a proposal."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE {self.s}.items SET state = 'open', proposal = NULL, proposed_by = NULL,"
                " claimed_by = NULL, claimed_at = NULL"
                " WHERE tenant_id = $1 AND decision_id = $2 AND claimed_by = $3"
                " AND state = 'second_claimed' RETURNING decision_id",
                tenant,
                decision_id,
                account.account_id,
            )
            if row is None:
                return False
            await self._act(conn, tenant, decision_id, account, "send_back", {"why": why})
            return True

    async def close(
        self,
        tenant: str,
        decision_id: str,
        account: Account,
        *,
        expected_state: str,
        review_id: str,
        final_band: int,
        detail: dict[str, Any],
        publish: Any,
    ) -> bool:
        """Settle an item held by `account`: `publish()` (the outcome, awaited until the broker
        has it) runs while the row is locked, so the item closes only when the outcome is out,
        and a failed publish leaves it as it was."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT decision_id FROM {self.s}.items WHERE tenant_id = $1"
                " AND decision_id = $2 AND claimed_by = $3 AND state = $4 FOR UPDATE",
                tenant,
                decision_id,
                account.account_id,
                expected_state,
            )
            if row is None:
                return False
            await publish()
            await conn.execute(
                f"UPDATE {self.s}.items SET state = 'closed', review_id = $3, final_band = $4,"
                " closed_at = now(), claimed_by = NULL WHERE tenant_id = $1 AND decision_id = $2",
                tenant,
                decision_id,
                review_id,
                final_band,
            )
            await self._act(conn, tenant, decision_id, account, "close", detail)
            return True

    async def actions(self, tenant: str, decision_id: str) -> list[Action]:
        rows = await self.pool.fetch(
            f"SELECT actor, action, detail, at FROM {self.s}.actions"
            " WHERE tenant_id = $1 AND decision_id = $2 ORDER BY at, action_id",
            tenant,
            decision_id,
        )
        return [Action(r["actor"], r["action"], json.loads(r["detail"]), r["at"]) for r in rows]

    async def similar(self, tenant: str, decision: CreditDecision, limit: int = 5) -> list[Any]:
        """Past decisions of the tenant nearest in score (not this member's), with the band a
        review settled on where there was one."""
        return list(
            await self.pool.fetch(
                "SELECT d.decision_id, d.application_id, d.score, d.probability_of_default,"
                f" d.band, d.decided_at, i.final_band FROM {self.s}.decisions d"
                f" LEFT JOIN {self.s}.items i USING (decision_id)"
                " WHERE d.tenant_id = $1 AND d.decision_id <> $2 AND d.member_id <> $3"
                " ORDER BY abs(d.score - $4), d.decided_at DESC LIMIT $5",
                tenant,
                decision.decision_id,
                decision.member_id,
                decision.score,
                limit,
            )
        )

    async def _act(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        decision_id: str,
        account: Account,
        action: str,
        detail: dict[str, Any],
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.s}.actions (tenant_id, decision_id, account_id, actor, action,"
            " detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            tenant,
            decision_id,
            account.account_id,
            account.username,
            action,
            json.dumps(detail),
        )

    def _item_select(self) -> str:
        return (
            "SELECT i.*, d.payload, c.username AS claimed_by_name,"
            " p.username AS proposed_by_name, a.application_id AS a_application_id,"
            " a.product, a.amount_kes, a.term_months, a.channel,"
            " a.declared_monthly_income_kes, a.applied_at"
            f" FROM {self.s}.items i JOIN {self.s}.decisions d USING (decision_id)"
            f" LEFT JOIN {self.s}.accounts c ON c.account_id = i.claimed_by"
            f" LEFT JOIN {self.s}.accounts p ON p.account_id = i.proposed_by"
            f" LEFT JOIN {self.s}.applications a"
            "   ON a.tenant_id = d.tenant_id AND a.application_id = d.application_id"
        )


def _account(row: Any) -> Account:
    return Account(
        account_id=row["account_id"],
        tenant_id=row["tenant_id"],
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        password_hash=row["password_hash"],
        failed_logins=row["failed_logins"],
        locked_until=row["locked_until"],
        disabled=row["disabled"],
        oidc_subject=row["oidc_subject"],
        last_sign_in=row["last_sign_in"],
    )


def _item(row: Any) -> Item:
    decision = CreditDecision()
    decision.ParseFromString(row["payload"])
    application = None
    if row["a_application_id"] is not None:
        application = Application(
            application_id=row["a_application_id"],
            product=row["product"],
            amount_kes=row["amount_kes"],
            term_months=row["term_months"],
            channel=row["channel"],
            declared_monthly_income_kes=row["declared_monthly_income_kes"],
            applied_at=row["applied_at"],
        )
    proposal = row["proposal"]
    return Item(
        decision=decision,
        tenant_id=row["tenant_id"],
        kind=row["kind"],
        appeal_id=row["appeal_id"],
        entered_at=row["entered_at"],
        state=row["state"],
        claimed_by=row["claimed_by"],
        claimed_by_name=row["claimed_by_name"],
        claimed_at=row["claimed_at"],
        proposal=json.loads(proposal) if proposal else None,
        proposed_by=row["proposed_by"],
        proposed_by_name=row["proposed_by_name"],
        final_band=row["final_band"],
        closed_at=row["closed_at"],
        application=application,
    )


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON can carry it (times as ISO text, UUIDs as text)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        elif isinstance(value, bytes):
            continue
        else:
            out[key] = value
    return out
