"""The console in a real browser (Debian's chromium driven by Playwright): sign in, the queue,
an item with its charts, claim and settle by mouse and by keyboard alone, four eyes across two
people, a narrow laptop screen, the administrators' accounts page, sign-in and sign-out through
an identity provider (the small OpenID provider of `tests/oidc_provider.py`), and no serious
axe-core violations.

The console runs as the service does (its app and lifespan under uvicorn, its own consumer
filling the queue from the topics, outcomes published to the broker); the topics and the
schema are this test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from google.protobuf.message import Message

from services.common.envelope import decode, wrap
from services.common.features import MOBILE_MONEY_SEQUENCES, REPAYMENT_SEQUENCES
from services.common.kafka import create_producer, publish
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import (
    CreditDecision,
    DecisionBand,
    ReasonCode,
)
from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged, ReviewOutcome
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.console.app import create_app
from services.console.people import SESSION_COOKIE, People, Role
from services.console.settings import ConsoleSettings
from services.console.wiring import open_store
from tests.integration.kafka_helpers import read_topic
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeIdp, serving_idp

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
TENANT = "sacco-browser"
PASSWORD = "a long enough password 1"
#: every page the tests visit, kept as artifacts of the run (`make screenshots` puts them in docs/)
SHOTS = Path(
    os.environ.get("ALAMA_SCREENSHOTS")
    or Path(os.environ.get("ALAMA_RUN_DIR", ".run-test")) / "screenshots"
)


@dataclass
class Site:
    url: str
    settings: ConsoleSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def site(infra: InfraSettings) -> AsyncIterator[Site]:
    async with _running_console(infra) as running:
        yield running


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdp]:
    async with serving_idp(FakeIdp(role_claim="groups")) as provider:
        yield provider


@pytest.fixture
async def idp_site(infra: InfraSettings, idp: FakeIdp) -> AsyncIterator[Site]:
    """The console with sign-in through `idp`: its people belong to TENANT, their role comes
    from the IdP's groups."""
    async with _running_console(
        infra,
        oidc_issuer=idp.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_tenant=TENANT,
        oidc_role_claim="groups",
        oidc_roles={"alama-reviewers": "risk_officer"},
        oidc_state_secret="t" * 40,
    ) as running:
        yield running


@contextlib.asynccontextmanager
async def _running_console(infra: InfraSettings, **overrides: Any) -> AsyncIterator[Site]:
    """The console served by uvicorn on its own topics and schema, with `overrides` of its
    settings, its people added and the topics fed."""
    run = uuid.uuid4().hex[:10]
    names = ("apps", "dec", "rev", "appeals", "erase", "erased", "export", "parts", "outcomes")
    topics = [TopicSpec(f"test.console.{name}.{run}", 3, 1) for name in names]
    await ensure_topics(infra, topics)
    settings = ConsoleSettings(
        infra=infra,
        db_schema=f"console_br_{run}",
        consumer_group=f"console-br-{run}",
        applications_topic=topics[0].name,
        decisions_topic=topics[1].name,
        review_outcomes_topic=topics[2].name,
        appeals_topic=topics[3].name,
        erasures_topic=topics[4].name,
        erasures_completed_topic=topics[5].name,
        exports_topic=topics[6].name,
        export_parts_topic=topics[7].name,
        loan_outcomes_topic=topics[8].name,
        explanation_target="127.0.0.1:1",
        drift_metrics_url="http://127.0.0.1:1/metrics",  # away: the page says so
        outcomes_metrics_url="http://127.0.0.1:1/metrics",
        four_eyes_amount_kes=100_000,
        port=_free_port(),
        **overrides,
    )
    store = await open_store(settings)
    people = People(store, settings)
    for username, role in (
        ("alice", Role.RISK_OFFICER),
        ("bob", Role.CREDIT_MANAGER),
        ("carol", Role.LOAN_OFFICER),
        ("ada", Role.ADMIN),
    ):
        await people.add(
            tenant=TENANT,
            username=username,
            display_name=username.title(),
            role=role,
            password=PASSWORD,
        )
    await store.pool.close()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.port,
            log_config=None,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(60):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.05)
    await _feed(settings)
    try:
        yield Site(f"http://localhost:{settings.port}", settings)
    finally:
        server.should_exit = True
        await serving
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


async def _feed(settings: ConsoleSettings) -> None:
    """Two applications in band review (one small, one above the tenant's four-eyes amount)
    and one the model declined."""
    producer = create_producer(settings.infra, client_id="console-browser-test")
    await producer.start()
    try:
        for app_id, amount, band in (
            ("app-small", 40_000, DecisionBand.DECISION_BAND_REVIEW),
            ("app-big", 350_000, DecisionBand.DECISION_BAND_REVIEW),
            ("app-declined", 90_000, DecisionBand.DECISION_BAND_DECLINE),
        ):
            application = LoanApplicationSubmitted(
                application_id=app_id,
                member_id=f"m-{app_id}",
                amount_kes=amount,
                term_months=12,
                tenant_id=TENANT,
                declared_monthly_income_kes=45_000,
                product=1,  # type: ignore[arg-type]
                attributes={"gender": "female" if app_id != "app-big" else "male"},
            )
            application.applied_at.GetCurrentTime()
            decision = CreditDecision(
                decision_id=f"d-{app_id}",
                application_id=app_id,
                member_id=f"m-{app_id}",
                model_version="v-browser",
                probability_of_default=0.18,
                score=604,
                band=band,  # type: ignore[arg-type]
                tenant_id=TENANT,
                features={"rp_late_count_6m": 2.0},
                reasons=[
                    ReasonCode(
                        code="rp_late_count_6m",
                        description="2 late repayments in the last 6 months",
                        contribution=0.4,
                    )
                ],
                repayment_attention=[(i + 1) / 300 for i in range(24)],
                mobile_money_attention=[1 / 26] * 26,
            )
            for name, values in _history().items():
                decision.sequences[name].values.extend(values)
            decision.decided_at.GetCurrentTime()
            for topic, payload in (
                (settings.applications_topic, application),
                (settings.decisions_topic, decision),
            ):
                envelope = wrap(payload, producer="test", subject=app_id)
                await (await publish(producer, topic, envelope))
        for topic, payload, subject in _past_book():
            envelope = wrap(payload, producer="test", subject=subject)
            await (await publish(producer, getattr(settings, topic), envelope))
    finally:
        await producer.stop()


def _past_book() -> list[tuple[str, Message, str]]:
    """The tenant's earlier decisions (160, by gender and age band) and how the approved loans
    turned out: what the oversight page's fairness, equal opportunity and bands are about."""
    bands = ("18-24", "25-34", "35-44", "45+")
    out: list[tuple[str, Message, str]] = []
    for i in range(160):
        app_id = f"past-{i}"
        gender = "female" if i % 2 else "male"
        approved = (i * 7) % 10 < (6 if gender == "female" else 7)
        application = LoanApplicationSubmitted(
            application_id=app_id,
            member_id=f"m-{app_id}",
            amount_kes=20_000 + 500 * i,
            term_months=12,
            tenant_id=TENANT,
            product=1,  # type: ignore[arg-type]
            attributes={"gender": gender, "age_band": bands[i % 4]},
        )
        application.applied_at.GetCurrentTime()
        band = (
            DecisionBand.DECISION_BAND_APPROVE if approved else DecisionBand.DECISION_BAND_DECLINE
        )
        decision = CreditDecision(
            decision_id=f"d-{app_id}",
            application_id=app_id,
            member_id=f"m-{app_id}",
            model_version="v-browser",
            probability_of_default=0.08 if approved else 0.4,
            score=680 if approved else 540,
            band=band,
            tenant_id=TENANT,
        )
        decision.decided_at.GetCurrentTime()
        out += [("applications_topic", application, app_id), ("decisions_topic", decision, app_id)]
        if approved:
            outcome = LoanOutcome(
                loan_id=f"L-{app_id}",
                application_id=app_id,
                decision_id=f"d-{app_id}",
                model_version="v-browser",
                tenant_id=TENANT,
                defaulted=i % 11 == 0,
                probability_of_default=0.08,
                band=band,
                final_band=band,
            )
            outcome.outcome_at.GetCurrentTime()
            out.append(("loan_outcomes_topic", outcome, f"L-{app_id}"))
    return out


def _history() -> dict[str, list[float]]:
    """The LSTM's inputs a decision carries: six months of repayments (one paid late, in
    part), eight weeks of mobile money."""
    months, weeks = 24, 13
    due = [0.0] * 18 + [5000.0] * 6
    paid = [0.0] * 18 + [5000.0, 5000.0, 2000.0, 5000.0, 5000.0, 5000.0]
    late = [0.0] * 20 + [12.0, 0.0, 0.0, 0.0]
    observed = [0.0] * 18 + [1.0] * 6
    assert len(due) == len(paid) == len(late) == len(observed) == months
    seen = [0.0] * 5 + [1.0] * 8
    history = dict(zip(REPAYMENT_SEQUENCES, (due, paid, late, observed), strict=True))
    history |= {name: [v * 1000.0 for v in seen] for name in MOBILE_MONEY_SEQUENCES}
    history["mm_mask_seq"] = seen
    assert all(len(history[n]) == weeks for n in MOBILE_MONEY_SEQUENCES)
    return history


async def _browser():  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    if not HAVE_CHROMIUM:  # a missing browser fails the run, it never skips it
        pytest.fail(f"no chromium at {CHROMIUM}: `make setup` installs Debian's package")
    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    return playwright, browser


async def _sign_in(page, site: Site, username: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{site.url}/login")
    await page.fill("#tenant", TENANT)
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")


async def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _serious_axe_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's serious and critical findings on the page (its context must bypass CSP: the
    script goes in inline)."""
    await page.add_script_tag(path=str(AXE))
    found: list[str] = await page.evaluate(
        "async () => (await axe.run()).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return found


async def _wait_for_queue(page, site: Site, rows: int) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(60):
        while True:
            await page.goto(f"{site.url}/queue")
            if await page.locator("#queue-rows a").count() >= rows:
                return
            await asyncio.sleep(0.5)


async def test_an_officer_settles_a_review_by_mouse_and_two_people_settle_a_large_one(
    site: Site,
) -> None:
    manager, browser = await _browser()
    try:
        page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
        await page.goto(f"{site.url}/queue")
        assert page.url.startswith(f"{site.url}/login")  # signed out: sent to sign in

        await page.fill("#tenant", TENANT)
        await page.fill("#username", "alice")
        await page.fill("#password", "not her password")
        await page.click("button[type=submit]")
        assert "Wrong tenant, user name or password" in await page.inner_text("#login-error")

        await _sign_in(page, site, "alice")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        session_cookie = cookies["alama_console_session"]
        assert session_cookie["httpOnly"] and session_cookie["secure"]
        assert session_cookie["sameSite"] == "Strict"
        await _wait_for_queue(page, site, 2)
        await _shot(page, "queue")
        assert await page.locator("#queue-rows tr").count() == 2

        await page.click("text=app-small")
        assert await page.inner_text("#amount") == "KES 40,000"
        drawn = await page.evaluate(
            "() => !!Chart.getChart(document.getElementById('chart-repayment-attention'))"
        )
        assert drawn, "the attention chart is drawn from the page's own scripts"
        summary = await page.inner_text("#repayment-summary")
        assert "6 months with a loan due" in summary and "late in 1 of them" in summary
        assert "8 weeks with activity" in await page.inner_text("#mobile-money-summary")
        drawn = await page.evaluate(
            "() => ['chart-repayment-history', 'chart-mm-history'].every("
            "id => !!Chart.getChart(document.getElementById(id)))"
        )
        assert drawn, "the member's history is charted"
        assert "unavailable" in await page.inner_text("#explanation-missing")
        await page.click("#claim")
        assert "You hold this item" in await page.inner_text("#notice")
        await page.check("input[name=outcome][value=approve]")
        await page.check("input[value=REVIEW_INCOME_VERIFIED]")
        await page.fill("#justification", "Six months of payslips verified at the branch.")
        await _shot(page, "item-claimed")
        await page.click("#submit-outcome")
        assert "Settled" in await page.inner_text("#notice")
        assert await page.inner_text("#outcome") == "approve"

        # the large one: alice proposes, she cannot confirm it herself, bob confirms
        await page.goto(f"{site.url}/items/d-app-big")
        await page.click("#claim")
        await page.check("input[name=outcome][value=approve]")
        await page.check("input[value=REVIEW_GUARANTORS]")
        await page.fill("#justification", "Two guarantors pledged shares covering the loan.")
        await page.click("#submit-outcome")
        assert "waits for a second person" in await page.inner_text("#notice")
        assert await page.locator("#claim-second").count() == 0

        other = await (await browser.new_context()).new_page()
        await _sign_in(other, site, "bob")
        await other.goto(f"{site.url}/items/d-app-big")
        assert "alice proposes to approve" in await other.inner_text("#proposal")
        await other.click("#claim-second")
        await other.click("#confirm")
        assert "Settled" in await other.inner_text("#notice")
        await _shot(other, "item-confirmed")

        # oversight: the settled outcomes by gender (the declined one is a decline), drift away
        await page.click("text=Oversight")
        gender = await page.inner_text("#fairness-gender")
        assert "female" in gender and "male" in gender
        assert "Equal-opportunity difference" in await page.inner_text("#eod-gender")
        assert "25-34" in await page.inner_text("#opportunity-age_band")
        assert "unavailable" in await page.inner_text("#live-missing")
        assert "unavailable" in await page.inner_text("#psi-missing")
        drawn = await page.evaluate(
            "() => !!Chart.getChart(document.getElementById('chart-bands'))"
        )
        assert drawn
        await _shot(page, "oversight")

        # a loan officer reads but cannot settle; the sign-out form ends the session
        clerk = await (await browser.new_context()).new_page()
        await _sign_in(clerk, site, "carol")
        await clerk.goto(f"{site.url}/queue?view=closed")
        assert await clerk.locator("#queue-rows a").count() == 2
        await clerk.goto(f"{site.url}/items/d-app-small")
        assert await clerk.locator("#claim").count() == 0
        await clerk.click("text=Sign out")
        await clerk.goto(f"{site.url}/queue")
        assert clerk.url.startswith(f"{site.url}/login")
    finally:
        await browser.close()
        await manager.stop()

    records = await read_topic(site.settings.infra, site.settings.review_outcomes_topic, 2)
    outcomes = {
        o.application_id: o for o in (decode(r.value, ReviewOutcome).payload for r in records)
    }
    assert outcomes["app-small"].reviewer_id == "alice"
    assert (outcomes["app-big"].reviewer_id, outcomes["app-big"].second_reviewer_id) == (
        "alice",
        "bob",
    )


async def test_the_console_works_by_keyboard_on_a_narrow_screen_without_serious_axe_violations(
    site: Site,
) -> None:
    manager, browser = await _browser()
    try:
        context = await browser.new_context(viewport={"width": 800, "height": 700}, bypass_csp=True)
        page = await context.new_page()
        await page.goto(f"{site.url}/login")
        await page.keyboard.press("Tab")  # the skip link first
        assert await page.evaluate("document.activeElement.className") == "skip"
        await page.focus("#tenant")
        await page.keyboard.type(TENANT)
        await page.keyboard.press("Tab")
        await page.keyboard.type("alice")
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{site.url}/queue")
        await _wait_for_queue(page, site, 2)

        violations = {}
        for path in ("/queue", "/items/d-app-small", "/oversight"):
            await page.goto(f"{site.url}{path}")
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways on an 800 px screen"
            violations[path] = await _serious_axe_violations(page)
        assert violations == {"/queue": [], "/items/d-app-small": [], "/oversight": []}

        # reach the item and claim it with the keyboard only
        await page.goto(f"{site.url}/queue")
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.textContent") == "app-small":
                break
        else:
            pytest.fail("the queue's link to the item cannot be reached with Tab")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{site.url}/items/d-app-small")
        await page.focus("#claim")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#notice")
        assert "You hold this item" in await page.inner_text("#notice")
        await _shot(page, "keyboard-narrow")
    finally:
        await browser.close()
        await manager.stop()


async def test_a_declined_members_notice_and_appeal_from_the_console(site: Site) -> None:
    playwright, browser = await _browser()
    try:
        page = await (await browser.new_context()).new_page()
        await _sign_in(page, site, "carol")  # a loan officer, at the member's side
        await _wait_for_queue(page, site, 2)
        await page.fill("#find-application", "app-declined")
        await page.click("form.find button")
        assert await page.inner_text("#band") == "decline"
        await page.click("#notice-link")
        english = await page.inner_text("#notice-en")
        swahili = await page.inner_text("#notice-sw")
        assert "2 late repayments in the last 6 months" in english
        assert "malipo 2 yaliyochelewa katika miezi 6 iliyopita" in swahili
        assert "Jinsi ya kukata rufaa" in swahili
        await _shot(page, "notice")
        pdf = await page.request.get(f"{site.url}/decisions/d-app-declined/notice.pdf")
        assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
        assert b"malipo 2 yaliyochelewa" in await pdf.body()

        await page.goto(f"{site.url}/decisions?application_id=app-declined")
        await page.fill("#grounds", "The late payments were the bank's error; letter attached.")
        await page.click("#lodge-appeal")
        assert "appeal is lodged" in await page.inner_text("#notice")
        await page.goto(f"{site.url}/queue")
        assert await page.locator("#queue-rows a", has_text="app-declined").count() == 1
    finally:
        await browser.close()
        await playwright.stop()
    records = await read_topic(site.settings.infra, site.settings.appeals_topic, 1)
    appeal = decode(records[0].value, AppealLodged).payload
    assert (appeal.decision_id, appeal.lodged_by, appeal.channel) == (
        "d-app-declined",
        "carol",
        "console",
    )


async def test_an_admin_manages_accounts_and_nobody_else_opens_the_page(site: Site) -> None:
    playwright, browser = await _browser()
    try:
        # a loan officer has no link to the accounts page and is refused it
        clerk = await (await browser.new_context()).new_page()
        await _sign_in(clerk, site, "carol")
        await clerk.wait_for_url(f"{site.url}/queue")
        assert await clerk.get_by_role("link", name="Accounts").count() == 0
        refused = await clerk.goto(f"{site.url}/admin")
        assert refused is not None and refused.status == 403
        assert "Your role may not do this." in await clerk.inner_text("main")

        page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
        await _sign_in(page, site, "ada")
        await page.wait_for_url(f"{site.url}/queue")
        await page.get_by_role("link", name="Accounts").click()
        await page.wait_for_url(f"{site.url}/admin")
        assert await page.inner_text("h1") == f"Accounts of {TENANT}"
        everyone = ["ada", "alice", "bob", "carol"]
        assert await _usernames(page) == everyone

        # too short a password: the browser itself does not send the form
        await page.fill("#new-username", "erin")
        await page.fill("#new-display-name", "Erin Achieng")
        await page.select_option("#new-role", "auditor")
        await page.fill("#new-password", "short")
        await page.click("#add-account button[type=submit]")
        assert await page.eval_on_selector("#new-password", "e => e.validity.tooShort")
        assert page.url == f"{site.url}/admin"
        # a taken user name: the console says why, keeps what was typed, adds nobody
        await page.fill("#new-username", "alice")
        await page.fill("#new-password", PASSWORD)
        await page.click("#add-account button[type=submit]")
        await page.wait_for_selector("#admin-error")
        assert await page.inner_text("#admin-error") == "There is an account 'alice' already."
        assert await page.input_value("#new-display-name") == "Erin Achieng"
        assert await page.input_value("#new-role") == "auditor"
        assert await page.input_value("#new-password") == ""  # a password is never sent back
        assert await _usernames(page) == everyone
        assert await page.locator("#account-log").count() == 0  # no change logged
        await _shot(page, "admin-refused-input")

        # added with the role chosen
        await page.fill("#new-username", "erin")
        await page.fill("#new-password", PASSWORD)
        await page.click("#add-account button[type=submit]")
        await page.wait_for_url(f"{site.url}/admin?done=add")
        assert await page.inner_text("#admin-notice") == "The account was added."
        assert await _usernames(page) == ["ada", "alice", "bob", "carol", "erin"]
        erin_row = page.locator("#account-erin")
        assert await erin_row.locator("select").input_value() == "auditor"
        assert await erin_row.locator("td").nth(0).inner_text() == "Erin Achieng"

        # erin mistypes her password until the account locks; ada unlocks it
        erin = await (await browser.new_context()).new_page()
        for _ in range(site.settings.lockout_failures):
            await erin.goto(f"{site.url}/login")
            await erin.fill("#tenant", TENANT)
            await erin.fill("#username", "erin")
            await erin.fill("#password", "not her password")
            await erin.click("button[type=submit]")
        assert "locked" in await erin.inner_text("#login-error")
        await page.goto(f"{site.url}/admin")
        await erin_row.get_by_role("button", name="Unlock").click()
        await page.wait_for_url(f"{site.url}/admin?done=unlock")
        assert await page.inner_text("#admin-notice") == "The account was unlocked."
        assert await erin_row.get_by_role("button", name="Unlock").count() == 0
        await _sign_in(erin, site, "erin")
        await erin.wait_for_url(f"{site.url}/queue")
        assert "Erin Achieng · Auditor" in await erin.inner_text(".who")

        # disabled: her open session ends at once and she cannot sign in; enabled: she can
        await erin_row.get_by_role("button", name="Disable").click()
        await page.wait_for_url(f"{site.url}/admin?done=disable")
        assert "sessions have ended" in await page.inner_text("#admin-notice")
        assert await erin_row.locator("td").nth(5).inner_text() == "disabled"
        await erin.goto(f"{site.url}/queue")
        assert erin.url.startswith(f"{site.url}/login")
        await _sign_in(erin, site, "erin")
        assert "Wrong tenant, user name or password" in await erin.inner_text("#login-error")
        await erin_row.get_by_role("button", name="Enable").click()
        await page.wait_for_url(f"{site.url}/admin?done=enable")
        assert await erin_row.locator("td").nth(5).inner_text() == "active"
        await _sign_in(erin, site, "erin")
        await erin.wait_for_url(f"{site.url}/queue")

        log = await page.locator("#account-log tbody tr").all_inner_texts()
        assert [row.split("\t")[1:] for row in log] == [
            ["ada", "erin", "enable"],
            ["ada", "erin", "disable"],
            ["ada", "erin", "unlock"],
            ["ada", "erin", "add: Auditor"],
        ]
        await _shot(page, "admin")

        # axe on the page as it is now and with a refusal shown, wide and on a narrow screen
        checked = await (
            await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        ).new_page()
        await _sign_in(checked, site, "ada")
        await checked.wait_for_url(f"{site.url}/queue")
        await checked.goto(f"{site.url}/admin?done=enable")
        violations = {"wide": await _serious_axe_violations(checked)}
        await checked.fill("#new-username", "bob")
        await checked.fill("#new-password", PASSWORD)
        await checked.click("#add-account button[type=submit]")
        await checked.wait_for_selector("#admin-error")
        violations["refused"] = await _serious_axe_violations(checked)
        await checked.set_viewport_size({"width": 800, "height": 700})
        await checked.goto(f"{site.url}/admin")
        overflow = await checked.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "/admin scrolls sideways on an 800 px screen"
        await _shot(checked, "admin-narrow")
        violations["narrow"] = await _serious_axe_violations(checked)
        assert violations == {"wide": [], "refused": [], "narrow": []}
    finally:
        await browser.close()
        await playwright.stop()


async def _usernames(page) -> list[str]:  # type: ignore[no-untyped-def]
    names: list[str] = await page.locator("#accounts tbody th").all_inner_texts()
    return names


async def test_a_person_signs_in_and_out_through_the_identity_provider(
    idp_site: Site, idp: FakeIdp
) -> None:
    site = idp_site
    playwright, browser = await _browser()
    try:
        # CSP enforced as in production: the sign-out's way to the IdP must pass it
        page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
        await page.goto(f"{site.url}/queue")
        assert page.url.startswith(f"{site.url}/login")
        await _shot(page, "login-oidc")
        await page.click("#oidc-sign-in")  # to the IdP and back, signed in
        await page.wait_for_url(f"{site.url}/queue")
        who = await page.inner_text(".who")
        assert f"Jane Wanjiru · Risk officer · {TENANT}" in who  # the role from the IdP's groups
        await _wait_for_queue(page, site, 2)
        await _shot(page, "oidc-queue")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        old_session = cookies[SESSION_COOKIE]
        assert old_session["httpOnly"] and old_session["sameSite"] == "Strict"

        # signing out goes through the IdP's end_session and back to the console's sign-in
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{site.url}/login")
        assert idp.sign_outs == [
            {
                "id_token_hint": idp.issued[-1],
                "post_logout_redirect_uri": f"{site.url}/login",
                "client_id": CLIENT_ID,
            }
        ]
        assert SESSION_COOKIE not in {c["name"] for c in await page.context.cookies()}
        assert await page.locator("#login-notice").count() == 0
        replay = await (await browser.new_context()).new_page()
        await replay.context.add_cookies([old_session])  # type: ignore[list-item]
        await replay.goto(f"{site.url}/queue")
        assert replay.url.startswith(f"{site.url}/login"), "the old session still opens /queue"

        # an IdP that offers no sign-out: the console's session ends and the page says the
        # IdP's may still be open
        idp.end_session = False
        await page.click("#oidc-sign-in")
        await page.wait_for_url(f"{site.url}/queue")
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{site.url}/login?signed_out=idp-open")
        assert "may still be open" in await page.inner_text("#login-notice")
        assert len(idp.sign_outs) == 1
        await _shot(page, "oidc-idp-session-open")
        await page.goto(f"{site.url}/queue")
        assert page.url.startswith(f"{site.url}/login")
        checked = await (await browser.new_context(bypass_csp=True)).new_page()
        await checked.goto(f"{site.url}/login?signed_out=idp-open")
        assert await _serious_axe_violations(checked) == []
    finally:
        await browser.close()
        await playwright.stop()
