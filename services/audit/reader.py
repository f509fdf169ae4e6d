"""The audit chain as other programs read it (the demo, the bench, dashboards): what was audited
about a set of applications, without knowing the audit tables.

A reader logs in as one of the roles `migrate` grants SELECT on the events table
(`AuditSettings.readers`, the shared login by default): it sees the chain's rows, never the
personal data beside them, and writes nothing. Applications are picked by the prefix of their id
(a demo or bench run gives all of its applications one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.audit.store import checked_schema
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS


@dataclass(frozen=True)
class AuditedEvent:
    """One audited event about an application."""

    seq: int
    topic: str
    application_id: str
    event_id: str
    trace_id: str
    occurred_at: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class AuditedDecision:
    """A decision as the chain holds it: enough to follow it through the API and its trace."""

    application_id: str
    decision_id: str
    trace_id: str
    band: str


def _starting_with(prefix: str) -> str:
    """A LIKE pattern for ids starting with `prefix`, its own wildcards taken literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class AuditReader:
    """Read-only questions about the chain in one schema, over a connection or a pool."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool, schema: str = "audit") -> None:
        self.db = db
        self.events_table = f"{checked_schema(schema)}.events"

    @classmethod
    @asynccontextmanager
    async def connect(cls, dsn: str, schema: str = "audit") -> AsyncIterator[AuditReader]:
        """A reader on its own connection, closed on leaving."""
        conn = await asyncpg.connect(dsn)
        try:
            yield cls(conn, schema)
        finally:
            await conn.close()

    async def events(
        self, prefix: str, topic: str | None = None, *, tenant: str | None = None
    ) -> list[AuditedEvent]:
        """Every audited event about the applications whose id starts with `prefix` (of one
        topic, of one tenant when given: application ids are each tenant's own), in chain
        order."""
        records = await self.db.fetch(
            "SELECT seq, topic, application_id, event_id, trace_id, occurred_at, recorded_at"
            f" FROM {self.events_table}"
            " WHERE application_id LIKE $1 AND ($2::text IS NULL OR topic = $2)"
            "   AND ($3::text IS NULL OR coalesce(payload_doc->>'tenant_id', '') = $3)"
            " ORDER BY seq",
            _starting_with(prefix),
            topic,
            tenant,
        )
        return [AuditedEvent(**dict(r)) for r in records]

    async def counts_by_topic(self, prefix: str) -> dict[str, int]:
        """How many events of each topic are audited about these applications."""
        records = await self.db.fetch(
            f"SELECT topic, count(*) AS n FROM {self.events_table}"
            " WHERE application_id LIKE $1 GROUP BY topic",
            _starting_with(prefix),
        )
        return {r["topic"]: int(r["n"]) for r in records}

    async def count(self, prefix: str, topic: str) -> int:
        """How many events of one topic are audited about these applications."""
        return int(
            await self.db.fetchval(
                f"SELECT count(*) FROM {self.events_table}"
                " WHERE topic = $1 AND application_id LIKE $2",
                topic,
                _starting_with(prefix),
            )
        )

    async def decision_bands(self, prefix: str) -> dict[str, int]:
        """How many of these applications' audited decisions fell in each band (its proto name,
        e.g. DECISION_BAND_APPROVE)."""
        records = await self.db.fetch(
            f"SELECT payload_doc->>'band' AS band, count(*) AS n FROM {self.events_table}"
            " WHERE topic = $1 AND application_id LIKE $2 GROUP BY 1",
            CREDIT_DECISIONS,
            _starting_with(prefix),
        )
        return {str(r["band"]): int(r["n"]) for r in records}

    async def decisions(self, prefix: str, limit: int | None = None) -> list[AuditedDecision]:
        """The audited decisions about these applications, in chain order (the first `limit`)."""
        records = await self.db.fetch(
            "SELECT application_id, trace_id, payload_doc->>'decision_id' AS decision_id,"
            f" coalesce(payload_doc->>'band', '') AS band FROM {self.events_table}"
            " WHERE topic = $1 AND application_id LIKE $2 ORDER BY seq LIMIT $3",
            CREDIT_DECISIONS,
            _starting_with(prefix),
            limit,
        )
        return [AuditedDecision(**dict(r)) for r in records]

    async def decision_latencies_ms(self, prefix: str) -> list[float]:
        """For each audited decision, milliseconds from its application's submission (as the
        application event says) to the decision's arrival in the chain."""
        records = await self.db.fetch(
            "SELECT extract(epoch FROM d.recorded_at - a.occurred_at) * 1000 AS ms"
            f" FROM {self.events_table} d JOIN {self.events_table} a"
            "   ON a.application_id = d.application_id AND a.topic = $1"
            " WHERE d.topic = $2 AND d.application_id LIKE $3",
            LOAN_APPLICATIONS,
            CREDIT_DECISIONS,
            _starting_with(prefix),
        )
        return [float(r["ms"]) for r in records]
