"""Sign-in and sign-out with a password (accounts in the console's own store); the sign-out of
a person who signed in through the identity provider goes on to sign them out there."""

from __future__ import annotations

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.metrics import SIGN_INS, SIGN_OUTS
from services.console.people import SESSION_COOKIE
from services.console.routes.oidc import IDP_SESSION_OPEN, sign_out_at_idp
from services.console.web import checked, console_of, local, page, signed_in, signed_out

router = APIRouter()
#: what the sign-in page says after a sign-out (`?signed_out=`)
SIGNED_OUT = {
    IDP_SESSION_OPEN: "You are signed out of the console, but your identity provider could not be"
    " reached or offers no sign-out, so your session there may still be open. Sign out at the"
    " identity provider too, or close the browser, before you leave a shared computer.",
}


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, next: str = "/queue", after: str = Query("", alias="signed_out")
) -> HTMLResponse:
    return page(request, "login.html", None, next=local(next), notice=SIGNED_OUT.get(after))


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
    """Ends the console's session; someone who signed in through the identity provider is then
    sent to sign out there (OpenID Connect RP-initiated logout)."""
    await checked(request, csrf_token)
    id_token = await console_of(request).people.sign_out(request.cookies.get(SESSION_COOKIE))
    if id_token is None:  # a password sign-in
        SIGN_OUTS.labels("console").inc()
        return signed_out(RedirectResponse("/login", status_code=303))
    return signed_out(await sign_out_at_idp(request, id_token))
