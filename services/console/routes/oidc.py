"""Sign-in through the SACCO's identity provider (OpenID Connect: authorization code with PKCE).

authlib reads the IdP's discovery document and JWKS and checks the ID token (signature, issuer,
audience, expiry, nonce); nothing here parses a JWT. Between the two legs the sign-in's state,
nonce and PKCE verifier live in a short-lived signed cookie of `/oidc` only, so the rest of the
console keeps its own cookies as they are (no app-wide session middleware). The end is the same
server-side session as a password sign-in, which keeps the ID token as the hint of the sign-out
at the IdP (RP-initiated logout): signing out of the console sends the browser on to the IdP's
`end_session_endpoint` when its discovery document names one.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client import MismatchingStateError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError

from services.console.metrics import SIGN_INS, SIGN_OUTS
from services.console.review import ReviewRefused
from services.console.settings import ConsoleSettings
from services.console.web import console_of, local, page, signed_in

log = logging.getLogger(__name__)
router = APIRouter()

STATE_COOKIE = "alama_console_oidc"
STATE_MAX_AGE_S = 600  # long enough to type a password and a second factor at the IdP
DISCOVERY_PATH = "/.well-known/openid-configuration"
END_SESSION_TIMEOUT_S = 5.0  # a person signing out waits for the discovery document this long
#: `/login?signed_out=` this when the IdP's session could not be ended (the page says so)
IDP_SESSION_OPEN = "idp-open"
_IDP = "idp"


class _Oidc:
    """The authlib client (it caches the discovery document and the JWKS) and the signer of
    the state cookie, made once per app."""

    def __init__(self, settings: ConsoleSettings) -> None:
        issuer = settings.oidc_issuer.rstrip("/")
        discovery = issuer if issuer.endswith(DISCOVERY_PATH) else issuer + DISCOVERY_PATH
        self.issuer = None if issuer.endswith(DISCOVERY_PATH) else issuer
        self.discovery = discovery
        self.schemes = ("https", "http") if settings.dev_mode else ("https",)
        secret = settings.oidc_client_secret
        client_kwargs: dict[str, Any] = {
            "scope": settings.oidc_scope,
            "code_challenge_method": "S256",
            "timeout": 10.0,
        }
        if secret is None:  # a public client: PKCE alone binds the code to this sign-in
            client_kwargs["token_endpoint_auth_method"] = "none"
        app = OAuth().register(
            _IDP,
            client_id=settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            server_metadata_url=discovery,
            client_kwargs=client_kwargs,
        )
        assert isinstance(app, StarletteOAuth2App)
        self.app = app
        # without a configured secret (development mode only: settings refuse it otherwise) a
        # random one: a sign-in then cannot finish on another replica or after a restart
        key = settings.oidc_state_secret
        self.signer = URLSafeTimedSerializer(
            key.get_secret_value() if key else secrets.token_urlsafe(32),
            salt="alama-console-oidc-state",
        )

    async def check_issuer(self) -> None:
        """The discovery document must name the issuer configured (OIDC Discovery §4.3)."""
        metadata = await self.app.load_server_metadata()
        if self.issuer is not None and str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            raise AuthlibBaseError(description="the discovery document names another issuer")

    async def end_session_endpoint(self) -> str | None:
        """The IdP's `end_session_endpoint` as its discovery document names it now (None: it
        names none). Read afresh at each sign-out, not from authlib's cache: sign-outs are rare,
        and an IdP that does not answer is then known before the browser is sent there."""
        async with httpx.AsyncClient(timeout=END_SESSION_TIMEOUT_S) as client:
            answer = await client.get(self.discovery)
            answer.raise_for_status()
            metadata = answer.json()
        if not isinstance(metadata, dict):
            raise ValueError("the discovery document is not a JSON object")
        if self.issuer is not None and str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            raise AuthlibBaseError(description="the discovery document names another issuer")
        endpoint = metadata.get("end_session_endpoint")
        if not endpoint:
            return None
        parts = urlsplit(str(endpoint))
        if parts.scheme not in self.schemes or not parts.netloc:
            raise ValueError(f"the end_session_endpoint {endpoint!r} is not an https:// URL")
        return str(endpoint)


def _oidc(request: Request) -> _Oidc:
    settings = console_of(request).settings
    if not settings.oidc_issuer:
        raise ReviewRefused("Sign-in through an identity provider is not set up.", status=404)
    oidc: _Oidc | None = getattr(request.app.state, "oidc", None)
    if oidc is None:
        oidc = _Oidc(settings)
        request.app.state.oidc = oidc
    return oidc


def _state_cookie(response: Response, value: str, secure: bool) -> None:
    # SameSite=Lax, not Strict like the session cookie: the IdP sends the browser back with a
    # cross-site top-level GET, on which a Strict cookie would be withheld, so every sign-in
    # would fail its state check. Lax is sent on exactly that navigation and on no cross-site
    # POST or sub-request; the cookie holds only this sign-in's state (signed, 10 minutes,
    # path /oidc) and signs nobody in by itself.
    response.set_cookie(
        STATE_COOKIE,
        value,
        max_age=STATE_MAX_AGE_S,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/oidc",
    )


def _refused(request: Request, message: str, next_: str = "/queue", status: int = 401) -> Response:
    SIGN_INS.labels("refused").inc()
    response = page(request, "login.html", None, status=status, error=message, next=next_)
    response.delete_cookie(STATE_COOKIE, path="/oidc")
    return response


@router.get("/oidc/login")
async def oidc_login(request: Request, next: str = "/queue") -> Response:
    """To the IdP, with a fresh state, nonce and PKCE challenge (authlib makes them)."""
    oidc = _oidc(request)
    settings = console_of(request).settings
    redirect_url = settings.oidc_redirect_url or str(request.url_for("oidc_callback"))
    request.scope["session"] = {}  # what authlib's Starlette client keeps its state in
    try:
        await oidc.check_issuer()
        response = await oidc.app.authorize_redirect(request, redirect_url)
    except (AuthlibBaseError, httpx.HTTPError, ValueError, RuntimeError) as exc:
        log.warning("the identity provider cannot start a sign-in: %s", exc)
        return _refused(
            request,
            "The identity provider cannot be reached. Try again later or sign in with a password.",
            local(next),
            status=502,
        )
    request.session["next"] = local(next)
    _state_cookie(response, oidc.signer.dumps(dict(request.session)), settings.cookie_secure)
    return response


@router.get("/oidc/callback", name="oidc_callback", response_class=HTMLResponse)
async def oidc_callback(request: Request) -> Response:
    """Back from the IdP: the code exchanged, the ID token checked, the account made or
    updated, then a session."""
    oidc = _oidc(request)
    console = console_of(request)
    state: dict[str, Any] = {}
    cookie = request.cookies.get(STATE_COOKIE)
    if cookie:
        try:
            state = oidc.signer.loads(cookie, max_age=STATE_MAX_AGE_S)
        except BadSignature:  # tampered with, or older than STATE_MAX_AGE_S
            state = {}
    next_ = local(str(state.get("next", "/queue")))
    request.scope["session"] = state
    try:
        token = await oidc.app.authorize_access_token(request)
    except MismatchingStateError:
        return _refused(
            request, "This sign-in was not started here or took too long. Please try again."
        )
    except (AuthlibBaseError, JoseError, httpx.HTTPError, ValueError, KeyError) as exc:
        log.warning("an identity provider sign-in was refused: %r", exc)
        return _refused(request, "The identity provider's answer could not be verified.", next_)
    claims = token.get("userinfo")
    subject = claims.get("sub") if claims else None
    if not claims or not isinstance(subject, str) or not subject:
        return _refused(request, "The identity provider sent no ID token.", next_)
    id_token = token.get("id_token")
    result = await console.people.sign_in_oidc(
        console.settings.oidc_tenant,
        subject,
        claims,
        id_token if isinstance(id_token, str) else None,
    )
    if result.token is None:
        return _refused(request, result.refused or "Sign-in refused.", next_)
    SIGN_INS.labels("ok").inc()
    # a page that moves on by itself rather than a redirect: the session cookie is
    # SameSite=Strict, and a browser withholds it on a redirect chain that a cross-site
    # navigation (the IdP's) began; a navigation this page starts is same-site
    response = page(
        request,
        "forward.html",
        None,
        target=next_,
        heading="Signed in",
        link_text="Continue to the console",
    )
    response.delete_cookie(STATE_COOKIE, path="/oidc")
    return signed_in(
        response,
        result.token,
        int(console.settings.session_max_hours * 3600),
        console.settings.cookie_secure,
    )


async def sign_out_at_idp(request: Request, id_token: str) -> Response:
    """After the console's session has ended: on to the IdP's end_session_endpoint with the ID
    token as `id_token_hint`, the `post_logout_redirect_uri` (the console's sign-in page unless
    set) and the `client_id`. An IdP that names no such endpoint or does not answer cannot end
    its session from here: the sign-in page then says it may still be open."""
    settings = console_of(request).settings
    endpoint = None
    if settings.oidc_issuer:  # else OIDC was turned off since this session began
        try:
            endpoint = await _oidc(request).end_session_endpoint()
        except (AuthlibBaseError, httpx.HTTPError, ValueError) as exc:
            log.warning("the identity provider cannot be reached to sign out: %s", exc)
    if endpoint is None:
        SIGN_OUTS.labels("idp_open").inc()
        return RedirectResponse(f"/login?signed_out={IDP_SESSION_OPEN}", status_code=303)
    back = settings.oidc_post_logout_redirect_url or str(request.url_for("login_form"))
    target = add_params_to_uri(
        endpoint,
        [
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", back),
            ("client_id", settings.oidc_client_id),
        ],
    )
    SIGN_OUTS.labels("idp").inc()
    # a page that moves on by itself rather than a redirect: the sign-out is a form, and CSP
    # form-action 'self' also governs where a form's redirects may go (the IdP is elsewhere)
    return page(
        request,
        "forward.html",
        None,
        target=target,
        heading="Signed out of the console",
        message="Now signing you out at your SACCO's identity provider.",
        link_text="Continue to the identity provider",
    )
