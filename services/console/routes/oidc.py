"""Sign-in through the SACCO's identity provider (OpenID Connect: authorization code with PKCE).

authlib reads the IdP's discovery document and JWKS and checks the ID token (signature, issuer,
audience, expiry, nonce); nothing here parses a JWT. Between the two legs the sign-in's state,
nonce and PKCE verifier live in a short-lived signed cookie of `/oidc` only, so the rest of the
console keeps its own cookies as they are (no app-wide session middleware). The end is the same
server-side session as a password sign-in.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError

from services.console.metrics import SIGN_INS
from services.console.review import ReviewRefused
from services.console.routes.signin import signed_in
from services.console.settings import ConsoleSettings
from services.console.web import console_of, local, page

log = logging.getLogger(__name__)
router = APIRouter()

STATE_COOKIE = "alama_console_oidc"
STATE_MAX_AGE_S = 600  # long enough to type a password and a second factor at the IdP
DISCOVERY_PATH = "/.well-known/openid-configuration"
_IDP = "idp"


class _Oidc:
    """The authlib client (it caches the discovery document and the JWKS) and the signer of
    the state cookie, made once per app."""

    def __init__(self, settings: ConsoleSettings) -> None:
        issuer = settings.oidc_issuer.rstrip("/")
        discovery = issuer if issuer.endswith(DISCOVERY_PATH) else issuer + DISCOVERY_PATH
        self.issuer = None if issuer.endswith(DISCOVERY_PATH) else issuer
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
    result = await console.people.sign_in_oidc(console.settings.oidc_tenant, subject, claims)
    if result.token is None:
        return _refused(request, result.refused or "Sign-in refused.", next_)
    SIGN_INS.labels("ok").inc()
    # a page that moves on by itself rather than a redirect: the session cookie is
    # SameSite=Strict, and a browser withholds it on a redirect chain that a cross-site
    # navigation (the IdP's) began; a navigation this page starts is same-site
    response = page(request, "oidc_continue.html", None, target=next_)
    response.delete_cookie(STATE_COOKIE, path="/oidc")
    return signed_in(
        response,
        result.token,
        int(console.settings.session_max_hours * 3600),
        console.settings.cookie_secure,
    )
