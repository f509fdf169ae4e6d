"""The console's audit trail page through the app, on a real audit service: the console reads the
trail over the audit service's gRPC contract (a real server on a scratch audit schema of the test
PostgreSQL), never the audit tables. The page shows each event with its verifier's mark and the
chain's status first: verified, broken at a record, or not verifiable (the service away)."""

from __future__ import annotations

import contextlib
import html
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.audit.chain import draft_from_event
from services.audit.server import start_server
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.audit.trail import TrailReader
from services.common.envelope import decode, encode, wrap
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.settings import InfraSettings
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS, REVIEW_OUTCOMES
from services.console.audit_trail import AuditTrailReader
from services.console.people import Role

from .conftest import ConsoleSite, OpenConsole

pytestmark = pytest.mark.integration

TENANT = "sacco-trail"
PASSWORD = "a long enough password 1"


@dataclass
class AuditService:
    store: AuditStore
    owner_pool: asyncpg.Pool
    target: str


@pytest.fixture
async def audit_service(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[AuditService]:
    """The audit service's trail contract on a scratch schema (no consumer: rows are appended
    directly, as the consumer would)."""
    schema = f"audit_trail_{uuid.uuid4().hex[:12]}"
    settings = AuditSettings(infra=infra, db_schema=schema, anchor_dir=tmp_path / "anchors")
    owner_pool = await create_pool(
        infra.model_copy(update={"postgres_dsn": settings.owner_dsn}), max_size=2
    )
    pool = await create_pool(
        infra.model_copy(update={"postgres_dsn": settings.writer_dsn}), max_size=4
    )
    key = settings.mac_key_bytes
    await AuditStore(owner_pool, schema, mac_key=key).migrate(
        writer=settings.writer_user, readers=settings.readers
    )
    store = AuditStore(pool, schema, mac_key=key)
    server = await start_server(TrailReader(store, settings.anchor_file), host="127.0.0.1", port=0)
    try:
        yield AuditService(store, owner_pool, f"127.0.0.1:{server.port}")
    finally:
        await server.stop(None)
        await pool.close()
        await owner_pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await owner_pool.close()


@pytest.fixture
async def site(
    open_console: OpenConsole, audit_service: AuditService
) -> AsyncIterator[ConsoleSite]:
    async with open_console() as opened:
        for username, role, tenant in (
            ("rita", Role.RISK_OFFICER, TENANT),
            ("lou", Role.LOAN_OFFICER, TENANT),
            ("eve", Role.RISK_OFFICER, "other-sacco"),
        ):
            await opened.console.people.add(
                tenant=tenant,
                username=username,
                display_name=username.title(),
                role=role,
                password=PASSWORD,
            )
        opened.console.trail = AuditTrailReader(audit_service.target)
        try:
            yield opened
        finally:
            await opened.console.trail.close()


@contextlib.asynccontextmanager
async def _signed_in(
    site: ConsoleSite, username: str, tenant: str = TENANT
) -> AsyncIterator[httpx.AsyncClient]:
    async with site.browser() as browser:
        answer = await browser.post(
            "/login", data={"tenant": tenant, "username": username, "password": PASSWORD}
        )
        assert answer.status_code == 303, answer.text
        yield browser


async def _audited(store: AuditStore, app: str, member: str) -> None:
    """An application's life as the audit consumer records it: submitted, decided, reviewed."""
    events = [
        (
            LOAN_APPLICATIONS,
            LoanApplicationSubmitted(
                application_id=app, member_id=member, amount_kes=45_000.0, tenant_id=TENANT
            ),
        ),
        (
            CREDIT_DECISIONS,
            CreditDecision(
                decision_id=f"d-{app}",
                application_id=app,
                member_id=member,
                score=598,
                band=DecisionBand.DECISION_BAND_REVIEW,
                tenant_id=TENANT,
            ),
        ),
        (
            REVIEW_OUTCOMES,
            ReviewOutcome(
                review_id=f"r-{app}",
                decision_id=f"d-{app}",
                application_id=app,
                reviewer_id="rita",
                original_band=DecisionBand.DECISION_BAND_REVIEW,
                final_band=DecisionBand.DECISION_BAND_APPROVE,
                justification="two guarantors confirmed",
                tenant_id=TENANT,
            ),
        ),
    ]
    await store.append(
        [
            draft_from_event(decode(encode(wrap(message, producer="it", subject=app))), topic)
            for topic, message in events
        ]
    )


async def test_the_trail_page_shows_each_event_verified_and_a_break_where_it_is(
    site: ConsoleSite, audit_service: AuditService
) -> None:
    app, member = f"app-{uuid.uuid4().hex[:8]}", f"member-{uuid.uuid4().hex[:8]}"
    await _audited(audit_service.store, app, member)
    url = f"/applications/{app}/trail"
    async with _signed_in(site, "rita") as rita, _signed_in(site, "lou") as lou:
        page = await rita.get(url)
        assert page.status_code == 200, page.text
        text = html.unescape(page.text)
        assert 'id="trail-status" data-state="verified"' in text
        assert "Chain verified" in text
        for seq in (1, 2, 3):
            assert f'id="seq-{seq}" data-verified="true"' in text
        assert text.index("LoanApplicationSubmitted") < text.index("ReviewOutcome")
        assert "DECISION_BAND_APPROVE" in text  # the review's outcome, as the chain holds it
        assert member not in text and "two guarantors" not in text  # commitments only
        assert "sha256:" in text
        assert (await lou.get(url)).status_code == 200, "every signed-in role may read it"

        # Someone with the audit schema's owner login rewrites the decision's score in SQL.
        async with audit_service.owner_pool.acquire() as conn, conn.transaction():
            events = f"{audit_service.store.events}"
            await conn.execute(f"ALTER TABLE {events} DISABLE TRIGGER events_append_only")
            await conn.execute(
                f"UPDATE {events} SET payload = replace(payload, '598', '798') WHERE seq = 2"
            )
            await conn.execute(f"ALTER TABLE {events} ENABLE TRIGGER events_append_only")
        text = html.unescape((await rita.get(url)).text)
        assert 'data-state="broken"' in text and "Broken at record 2" in text
        assert 'id="seq-2" data-verified="false"' in text
        assert 'id="seq-1" data-verified="true"' in text

    async with _signed_in(site, "eve", "other-sacco") as eve:
        page = await eve.get(url)  # another SACCO's application reads as no application
        assert page.status_code == 404
        assert "holds no event of this application" in html.unescape(page.text)
        assert "ReviewOutcome" not in page.text


async def test_the_trail_page_says_so_when_the_audit_service_is_away(site: ConsoleSite) -> None:
    assert site.console.trail is not None
    await site.console.trail.close()
    site.console.trail = AuditTrailReader("127.0.0.1:1", timeout_s=2.0)
    async with _signed_in(site, "rita") as rita:
        page = await rita.get("/applications/app-x/trail")
        assert page.status_code == 200
        assert 'data-state="unavailable"' in page.text
        assert "audit service is unavailable" in page.text
    async with site.browser() as nobody:
        answer = await nobody.get("/applications/app-x/trail")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
