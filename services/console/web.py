"""What every console page shares: the `Console` the pages read, the templates, who is signed
in, the CSRF check and the helpers for redirects. Each group of pages is a router under
`routes/` built on these, so a new page does not repeat them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.common.vocabulary import BANDS, CHANNELS, PRODUCTS, REVIEW_KINDS
from services.console.audit_trail import AuditTrailReader
from services.console.explanations import ExplanationReader
from services.console.model_card import ModelReader
from services.console.people import ROLE_NAMES, SESSION_COOKIE, People, Role, csrf_ok
from services.console.review import REASON_CODES, ReviewDesk, ReviewRefused
from services.console.settings import ConsoleSettings
from services.console.store import (
    AWAITING_SECOND,
    CLAIMED,
    CLOSED,
    OPEN,
    SECOND_CLAIMED,
    ConsoleStore,
    Session,
)

HERE = Path(__file__).parent
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


@dataclass
class Console:
    """What the pages need; built by the lifespan, or handed in by tests. The optional readers
    stand for other services' contracts: a page says so when one is not configured."""

    settings: ConsoleSettings
    store: ConsoleStore
    people: People
    desk: ReviewDesk
    explanations: ExplanationReader | None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    model: ModelReader | None = None
    trail: AuditTrailReader | None = None


class SignInRequired(Exception):
    pass


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


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


async def session_of(request: Request, roles: Iterable[Role] | None = None) -> Session:
    """The signed-in person (SignInRequired when nobody is); with `roles`, refused (403) unless
    their role is one of them."""
    session = await console_of(request).people.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired()
    if roles is not None and Role(session.account.role) not in set(roles):
        raise ReviewRefused("Your role may not do this.", status=403)
    return session


async def checked(
    request: Request, csrf_token: str | None, roles: Iterable[Role] | None = None
) -> Session:
    """The signed-in person of a state-changing request whose CSRF token is the session's."""
    session = await session_of(request, roles)
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


def signed_in(response: Response, token: str, max_age_s: int, secure: bool) -> Response:
    """The session cookie: HttpOnly, SameSite=Strict, Secure outside development."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age_s,
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )
    return response


def signed_out(response: Response) -> Response:
    """The session cookie removed (the session itself is ended in the store)."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def back(decision_id: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/items/{quote(decision_id)}?done={done}", status_code=303)


def local(target: str) -> str:
    """Only a path on this console: a `next` pointing elsewhere is an open redirect."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/queue"
    return target
