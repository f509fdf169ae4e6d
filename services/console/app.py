"""The console's web app: server-rendered pages (Jinja2), progressive enhancement with htmx,
charts with Chart.js; every asset is served from `static/` (a SACCO office may have no
internet), and the Content-Security-Policy allows nothing else.

Pages work without JavaScript (plain forms and links); with it, htmx refreshes the queue in
place and Chart.js draws the charts from JSON embedded in the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware

from services.common.notices import NO_CHANGE, NotADecline, Notice, notice_of, notice_pdf
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.vocabulary import BANDS, CHANNELS, EXPLAINERS, PRODUCTS, REVIEW_KINDS
from services.console.explanations import ExplanationReader, Fetched
from services.console.metrics import QUEUE_BREACHING, QUEUE_OLDEST_SECONDS, QUEUE_OPEN, SIGN_INS
from services.console.oversight import drift_psi, group_rates
from services.console.people import (
    APPEAL_LODGERS,
    REVIEWERS,
    ROLE_NAMES,
    SESSION_COOKIE,
    People,
    Role,
    csrf_ok,
)
from services.console.review import REASON_CODES, ReviewDesk, ReviewRefused, proposal_of
from services.console.settings import ConsoleSettings
from services.console.store import (
    AWAITING_SECOND,
    CLAIMED,
    CLOSED,
    OPEN,
    SECOND_CLAIMED,
    Account,
    ConsoleStore,
    Item,
    Session,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none';"
    " object-src 'none'"
)
#: queue views: name -> (label, states)
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "open": ("Waiting", (OPEN, CLAIMED)),
    "second": ("Needs a second person", (AWAITING_SECOND, SECOND_CLAIMED)),
    "closed": ("Settled", (CLOSED,)),
}
STATE_NAMES = {
    OPEN: "open",
    CLAIMED: "claimed",
    AWAITING_SECOND: "awaiting second person",
    SECOND_CLAIMED: "second person reviewing",
    CLOSED: "settled",
}
MAX_WATERFALL_BARS = 12


@dataclass
class Console:
    """What the pages need; built by the lifespan, or handed in by tests."""

    settings: ConsoleSettings
    store: ConsoleStore
    people: People
    desk: ReviewDesk
    explanations: ExplanationReader | None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class SignInRequired(Exception):
    pass


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def create_app(
    settings: ConsoleSettings,
    build: Callable[[ConsoleSettings], Awaitable[Console]] | None = None,
) -> FastAPI:
    """The app; `build` makes its `Console` at start-up (the service's own wiring by default)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from services.console.wiring import build_console

        console = await (build or build_console)(settings)
        app.state.console = console
        refresher = asyncio.create_task(_refresh_metrics(console), name="console-metrics")
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            for close in reversed(console.closers):
                await close()

    app = FastAPI(
        title="Alama console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals |= {
        "band_name": lambda value: BANDS.name_or(value, "unknown"),
        "product_name": lambda value: PRODUCTS.name_or(value, "unknown").replace("_", " "),
        "channel_name": lambda value: CHANNELS.name_or(value, "unknown").replace("_", " "),
        "kind_name": lambda value: REVIEW_KINDS.name_or(value, "review"),
        "state_name": lambda state: STATE_NAMES.get(state, state),
        "role_name": lambda role: ROLE_NAMES.get(Role(role), role),
        "reason_codes": REASON_CODES,
        "views": VIEWS,
    }
    templates.env.filters["age"] = _age
    templates.env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M UTC") if t else ""

    def console_of(request: Request) -> Console:
        console: Console = request.app.state.console
        return console

    async def session_of(request: Request) -> Session:
        console = console_of(request)
        session = await console.people.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise SignInRequired()
        return session

    async def checked(request: Request, csrf_token: str | None) -> Session:
        session = await session_of(request)
        presented = csrf_token or request.headers.get("X-CSRF-Token")
        if not csrf_ok(session, presented):
            raise ReviewRefused("the form is stale or was not sent by this console", status=403)
        return session

    def page(
        request: Request, name: str, session: Session | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {"session": session, "account": session.account if session else None} | context,
            status_code=status,
        )

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, _exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/queue"
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(ReviewRefused)
    async def refused(request: Request, exc: ReviewRefused) -> Response:
        session = None
        with contextlib.suppress(SignInRequired):
            session = await session_of(request)
        return page(request, "error.html", session, status=exc.status, message=str(exc))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/queue") -> HTMLResponse:
        return page(request, "login.html", None, next=_local(next))

    @app.post("/login", response_class=HTMLResponse)
    async def login(
        request: Request,
        tenant: str = Form(max_length=64),
        username: str = Form(max_length=128),
        password: str = Form(max_length=1024),
        next: str = Form("/queue", max_length=2048),
    ) -> Response:
        console = console_of(request)
        result = await console.people.sign_in(tenant.strip(), username.strip(), password)
        if result.token is None:
            SIGN_INS.labels("locked" if "locked" in (result.refused or "") else "refused").inc()
            return page(
                request,
                "login.html",
                None,
                status=401,
                error=result.refused,
                tenant=tenant,
                username=username,
                next=_local(next),
            )
        SIGN_INS.labels("ok").inc()
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            result.token,
            max_age=int(console.settings.session_max_hours * 3600),
            httponly=True,
            secure=console.settings.cookie_secure,
            samesite="strict",
            path="/",
        )
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf_token: str | None = Form(None)) -> Response:
        await checked(request, csrf_token)
        await console_of(request).people.sign_out(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/queue", response_class=HTMLResponse)
    async def queue(request: Request, view: str = "open", page_no: int = 1) -> HTMLResponse:
        session = await session_of(request)
        console = console_of(request)
        if view not in VIEWS:
            view = "open"
        page_no = max(page_no, 1)
        size = console.settings.page_size
        items = await console.store.queue(
            session.account.tenant_id,
            states=VIEWS[view][1],
            limit=size + 1,
            offset=(page_no - 1) * size,
        )
        stats = dict(
            await console.store.stats(
                session.account.tenant_id, timedelta(hours=console.settings.review_sla_hours)
            )
        ).get(session.account.tenant_id)
        context: dict[str, Any] = {
            "items": items[:size],
            "more": len(items) > size,
            "view": view,
            "page_no": page_no,
            "now": datetime.now(UTC),
            "sla": timedelta(hours=console.settings.review_sla_hours),
            "stats": stats,
        }
        if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "queue-rows":
            return page(request, "_queue_rows.html", session, **context)
        return page(request, "queue.html", session, **context)

    @app.get("/items/{decision_id}", response_class=HTMLResponse)
    async def item_page(request: Request, decision_id: str, done: str = "") -> HTMLResponse:
        session = await session_of(request)
        return await _item_page(request, session, decision_id, notice=done)

    async def _item_page(
        request: Request,
        session: Session,
        decision_id: str,
        *,
        notice: str = "",
        error: str = "",
        status: int = 200,
        form: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        console = console_of(request)
        tenant = session.account.tenant_id
        item = await console.store.item(tenant, decision_id)
        if item is None:  # another tenant's id reads as unknown, never as forbidden
            raise ReviewRefused("There is no review item with that id.", status=404)
        fetched = (
            await console.explanations.explanation(decision_id, tenant)
            if console.explanations is not None
            else Fetched(None, "No explanation service is configured.")
        )
        return page(
            request,
            "item.html",
            session,
            status=status,
            item=item,
            now=datetime.now(UTC),
            explanation=fetched.explanation,
            explanation_missing=fetched.missing,
            charts=_charts(item, fetched),
            actions=await console.store.actions(tenant, decision_id),
            similar=await console.store.similar(tenant, item.decision),
            may_review=Role(session.account.role) in REVIEWERS,
            may_appeal=Role(session.account.role) in APPEAL_LODGERS,
            mine=item.claimed_by == session.account.account_id,
            proposed_by_me=item.proposed_by == session.account.account_id,
            notice=notice,
            error=error,
            form=form or {},
            four_eyes_amount=console.settings.four_eyes_amount(tenant),
        )

    @app.get("/oversight", response_class=HTMLResponse)
    async def oversight(request: Request) -> HTMLResponse:
        """Decisions by band over time, approval and disparate impact by protected group with
        bootstrap intervals, and the drift service's PSI."""
        session = await session_of(request)
        console = console_of(request)
        tenant, days = session.account.tenant_id, console.settings.oversight_days
        by_day = await console.store.bands_by_day(tenant, days)
        series: dict[str, dict[str, int]] = {}
        for row in by_day:
            day = row["day"].strftime("%Y-%m-%d")
            series.setdefault(day, {})[BANDS.name_or(row["band"], "unknown")] = row["n"]
        fairness = {
            attribute: group_rates(await console.store.outcomes_by_group(tenant, attribute, days))
            for attribute in ("gender", "age_band")
        }
        url = console.settings.drift_metrics_url
        psi = await drift_psi(url) if url else None
        return page(
            request,
            "oversight.html",
            session,
            days=days,
            series=series,
            fairness=fairness,
            psi=psi,
            chart={
                "days": list(series),
                "bands": {
                    band: [series[d].get(band, 0) for d in series]
                    for band in ("approve", "review", "decline")
                },
            },
        )

    @app.get("/decisions", response_class=HTMLResponse)
    async def find_decision(request: Request, application_id: str = "") -> Response:
        """An application's latest decision: its queue item, or the decision alone (where an
        officer can lodge the member's appeal)."""
        session = await session_of(request)
        console = console_of(request)
        tenant = session.account.tenant_id
        decision_id = await console.store.find_decision(tenant, application_id.strip())
        if decision_id is None:
            raise ReviewRefused(f"No decision for application {application_id!r}.", status=404)
        if await console.store.item(tenant, decision_id) is not None:
            return RedirectResponse(f"/items/{quote(decision_id)}", status_code=303)
        decision = await console.store.decision(tenant, decision_id)
        return page(
            request,
            "decision.html",
            session,
            decision=decision,
            may_appeal=Role(session.account.role) in APPEAL_LODGERS,
        )

    async def _notice(request: Request, session: Session, decision_id: str) -> Notice:
        console = console_of(request)
        tenant = session.account.tenant_id
        decision = await console.store.decision(tenant, decision_id)
        if decision is None:
            raise ReviewRefused("There is no decision with that id.", status=404)
        item = await console.store.item(tenant, decision_id)
        review = (
            ReviewOutcome(final_band=item.final_band)  # type: ignore[arg-type]
            if item is not None and item.state == CLOSED and item.final_band
            else None
        )
        try:
            notice = notice_of(decision, review)
        except NotADecline as exc:
            raise ReviewRefused(str(exc), status=404) from exc
        if review is None and console.explanations is not None:  # the model's own decline
            changes = await console.explanations.outcome_changes(decision_id, tenant)
            notice = replace(notice, changes=changes)
        return notice

    @app.get("/decisions/{decision_id}/notice", response_class=HTMLResponse)
    async def notice_page(request: Request, decision_id: str) -> HTMLResponse:
        """The member's notice, printable (the browser's print, or the PDF beside it)."""
        session = await session_of(request)
        notice = await _notice(request, session, decision_id)
        return page(request, "notice.html", session, notice=notice, no_change=NO_CHANGE)

    @app.get("/decisions/{decision_id}/notice.pdf")
    async def notice_document(request: Request, decision_id: str) -> Response:
        session = await session_of(request)
        notice = await _notice(request, session, decision_id)
        return Response(
            notice_pdf(notice, session.account.tenant_id),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="notice-{notice.application_id}.pdf"'
            },
        )

    @app.post("/decisions/{decision_id}/appeals")
    async def lodge_appeal(
        request: Request,
        decision_id: str,
        csrf_token: str | None = Form(None),
        grounds: str = Form("", max_length=4000),
    ) -> Response:
        session = await checked(request, csrf_token)
        await console_of(request).desk.lodge_appeal(session.account, decision_id, grounds)
        return _back(decision_id, "appealed")

    @app.post("/items/{decision_id}/claim")
    async def claim(
        request: Request, decision_id: str, csrf_token: str | None = Form(None)
    ) -> Response:
        session = await checked(request, csrf_token)
        await console_of(request).desk.claim(session.account, decision_id)
        return _back(decision_id, "claimed")

    @app.post("/items/{decision_id}/release")
    async def release(
        request: Request, decision_id: str, csrf_token: str | None = Form(None)
    ) -> Response:
        session = await checked(request, csrf_token)
        await console_of(request).desk.release(session.account, decision_id)
        return _back(decision_id, "released")

    @app.post("/items/{decision_id}/decide")
    async def decide(
        request: Request,
        decision_id: str,
        csrf_token: str | None = Form(None),
        outcome: str = Form(""),
        reason_codes: Annotated[list[str] | None, Form()] = None,
        justification: str = Form("", max_length=4000),
    ) -> Response:
        session = await checked(request, csrf_token)
        try:
            proposal = proposal_of(outcome, reason_codes or [], justification)
        except ValueError as exc:
            return await _item_page(
                request,
                session,
                decision_id,
                error=str(exc),
                status=422,
                form={
                    "outcome": outcome,
                    "reason_codes": reason_codes or [],
                    "justification": justification,
                },
            )
        settled = await console_of(request).desk.decide(session.account, decision_id, proposal)
        return _back(decision_id, "settled" if settled.closed else "proposed")

    @app.post("/items/{decision_id}/confirm")
    async def confirm(
        request: Request, decision_id: str, csrf_token: str | None = Form(None)
    ) -> Response:
        session = await checked(request, csrf_token)
        await console_of(request).desk.confirm(session.account, decision_id)
        return _back(decision_id, "settled")

    @app.post("/items/{decision_id}/send-back")
    async def send_back(
        request: Request,
        decision_id: str,
        csrf_token: str | None = Form(None),
        why: str = Form("", max_length=2000),
    ) -> Response:
        session = await checked(request, csrf_token)
        await console_of(request).desk.send_back(session.account, decision_id, why)
        return _back(decision_id, "sent_back")

    return app


def _back(decision_id: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/items/{quote(decision_id)}?done={done}", status_code=303)


def _local(target: str) -> str:
    """Only a path on this console: a `next` pointing elsewhere is an open redirect."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/queue"
    return target


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _charts(item: Item, fetched: Fetched) -> dict[str, Any]:
    """The charts' data, embedded in the page as JSON (drawn by static/console.js)."""
    decision = item.decision
    charts: dict[str, Any] = {
        "repayment_attention": list(decision.repayment_attention),
        "mobile_money_attention": list(decision.mobile_money_attention),
    }
    explanation = fetched.explanation
    if explanation is not None:
        tabular = [
            c
            for c in explanation.contributions
            if EXPLAINERS.name(c.explainer) in ("tree_shap", "linear_terms")
        ]
        ranked = sorted(tabular, key=lambda c: abs(c.contribution), reverse=True)
        shown = ranked[:MAX_WATERFALL_BARS]
        rest = sum(c.contribution for c in ranked[MAX_WATERFALL_BARS:])
        bars, total = [], 0.0
        for c in shown:
            bars.append(
                {"label": c.feature, "value": c.value, "from": total, "to": total + c.contribution}
            )
            total += c.contribution
        if ranked[MAX_WATERFALL_BARS:]:
            others = len(ranked) - MAX_WATERFALL_BARS
            label = f"{others} other features"
            bars.append({"label": label, "value": None, "from": total, "to": total + rest})
        charts["waterfall"] = bars
    return charts


async def _refresh_metrics(console: Console, every_s: float = 15.0) -> None:
    """The queue gauges from the store (every replica reports the same numbers)."""
    seen: set[str] = set()
    while True:
        started = time.monotonic()
        try:
            stats = await console.store.stats(
                None, timedelta(hours=console.settings.review_sla_hours)
            )
            now = datetime.now(UTC)
            current = set()
            for tenant, s in stats:
                current.add(tenant)
                QUEUE_OPEN.labels(tenant).set(s.open_items)
                QUEUE_OLDEST_SECONDS.labels(tenant).set(
                    (now - s.oldest_open).total_seconds() if s.oldest_open else 0
                )
                QUEUE_BREACHING.labels(tenant).set(s.breaching)
            for tenant in seen - current:  # emptied queues read 0, not their last value
                QUEUE_OPEN.labels(tenant).set(0)
                QUEUE_OLDEST_SECONDS.labels(tenant).set(0)
                QUEUE_BREACHING.labels(tenant).set(0)
            seen |= current
            await console.people.store.purge_sessions(console.people.idle)
        except Exception:
            log.exception("refreshing the queue metrics failed")
        await asyncio.sleep(max(every_s - (time.monotonic() - started), 1.0))


__all__ = ["Account", "Console", "DecisionBand", "create_app"]
