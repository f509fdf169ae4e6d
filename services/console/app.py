"""The console's web app: server-rendered pages (Jinja2), progressive enhancement with htmx,
charts with Chart.js; every asset is served from `static/` (a SACCO office may have no
internet), and the Content-Security-Policy allows nothing else.

Pages work without JavaScript (plain forms and links); with it, htmx refreshes the queue in
place and Chart.js draws the charts from JSON embedded in the page. The pages themselves are
routers under `routes/`, built on what `web` shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware

from services.console.metrics import QUEUE_BREACHING, QUEUE_OLDEST_SECONDS, QUEUE_OPEN
from services.console.review import ReviewRefused
from services.console.routes import (
    admin,
    decisions,
    model,
    oidc,
    oversight,
    review,
    signin,
    trail,
)
from services.console.settings import ConsoleSettings
from services.console.web import HERE, Console, SignInRequired, page, session_of

log = logging.getLogger(__name__)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none';"
    " object-src 'none'"
)
ROUTERS = (
    signin.router,
    oidc.router,
    review.router,
    decisions.router,
    oversight.router,
    model.router,
    admin.router,
    trail.router,
)


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

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=303)

    for router in ROUTERS:
        app.include_router(router)
    return app


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


__all__ = ["Console", "create_app"]
