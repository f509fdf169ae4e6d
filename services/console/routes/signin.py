"""Sign-in and sign-out with a password (accounts in the console's own store)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.metrics import SIGN_INS
from services.console.people import SESSION_COOKIE
from services.console.web import checked, console_of, local, page

router = APIRouter()


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


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/queue") -> HTMLResponse:
    return page(request, "login.html", None, next=local(next))


@router.post("/login", response_class=HTMLResponse)
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
            next=local(next),
        )
    SIGN_INS.labels("ok").inc()
    return signed_in(
        RedirectResponse(local(next), status_code=303),
        result.token,
        int(console.settings.session_max_hours * 3600),
        console.settings.cookie_secure,
    )


@router.post("/logout")
async def logout(request: Request, csrf_token: str | None = Form(None)) -> Response:
    await checked(request, csrf_token)
    await console_of(request).people.sign_out(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
