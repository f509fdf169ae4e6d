"""Sign-in through an identity provider, against a real one in the test: a small OpenID
provider (discovery, JWKS, authorize, token with PKCE) served by uvicorn on a free port, its RSA
key made here. The console runs on the real PostgreSQL; the test is the browser, following each
redirect by hand between the console and the provider."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.console.people import OIDC_USERNAME_PREFIX, Role

from .conftest import ConsoleSite, OpenConsole

pytestmark = pytest.mark.integration

TENANT = "sacco-idp"
CLIENT_ID = "alama-console"
CLIENT_SECRET = "s" * 40
ROLES = {"alama-reviewers": "risk_officer", "alama-managers": "credit_manager"}


@dataclass
class Person:
    sub: str = "idp-subject-0001"
    preferred_username: str = "jane"
    name: str = "Jane Wanjiru"
    roles: list[str] = field(default_factory=lambda: ["staff", "alama-reviewers"])


@dataclass
class FakeIdp:
    """An OpenID provider for one test: who signs in next, and what it may get wrong."""

    url: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    person: Person = field(default_factory=Person)
    signing_key: RSAKey | None = None  # another key under the same kid: a forged token
    nonce_override: str | None = None
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def discovery(_request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def jwks(_request: Request) -> Response:
            return JSONResponse(KeySet([self.key]).as_dict(private=False))

        async def authorize(request: Request) -> Response:
            q = request.query_params
            assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
            assert q["code_challenge_method"] == "S256" and "openid" in q["scope"].split()
            code = secrets.token_urlsafe(16)
            self.codes[code] = dict(q)
            back = urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

        async def token(request: Request) -> Response:
            form = await request.form()
            asked = self.codes.pop(str(form["code"]), None)
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if asked is None or request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(str(form["code_verifier"]).encode()).digest()
            ).rstrip(b"=")
            if challenge.decode() != asked["code_challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            assert form["redirect_uri"] == asked["redirect_uri"]
            now = int(time.time())
            claims = {
                "iss": self.url,
                "sub": self.person.sub,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": self.nonce_override or asked["nonce"],
                "name": self.person.name,
                "preferred_username": self.person.preferred_username,
                "roles": self.person.roles,
            }
            signed = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.signing_key or self.key)
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": signed,
                }
            )

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdp]:
    provider = FakeIdp()
    port = _free_port()
    provider.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_config=None)
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def site(open_console: OpenConsole, idp: FakeIdp) -> AsyncIterator[ConsoleSite]:
    async with open_console(
        oidc_issuer=idp.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_tenant=TENANT,
        oidc_roles=ROLES,
        oidc_state_secret="t" * 40,
    ) as opened:
        yield opened


async def _through_idp(
    browser: httpx.AsyncClient, next_: str = "/queue", *, state: str | None = None
) -> httpx.Response:
    """The browser's trip: the console's /oidc/login, the IdP's authorize, back to the
    callback (its state replaced when `state` is given)."""
    start = await browser.get("/oidc/login", params={"next": next_})
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as at_idp:
        back = await at_idp.get(start.headers["location"])
    assert back.status_code == 302
    url = httpx.URL(back.headers["location"])
    assert url.path == "/oidc/callback"
    params = dict(url.params)
    if state is not None:
        params["state"] = state
    return await browser.get(url.path, params=params)


async def test_a_first_sign_in_makes_an_account_with_the_mapped_role_and_a_session(
    site: ConsoleSite, idp: FakeIdp
) -> None:
    async with site.browser() as browser:
        assert 'id="oidc-sign-in"' in (await browser.get("/login")).text
        done = await _through_idp(browser, "/queue?view=closed")
        assert done.status_code == 200, done.text
        assert 'content="0;url=/queue?view=closed"' in done.text
        assert "alama_console_session" in browser.cookies
        assert (await browser.get("/queue")).status_code == 200

    account = await site.console.store.account_by_subject(TENANT, idp.person.sub)
    assert account is not None
    assert account.role == Role.RISK_OFFICER
    assert account.username == f"{OIDC_USERNAME_PREFIX}jane"
    assert account.display_name == "Jane Wanjiru"
    assert account.password_hash is None and account.last_sign_in is not None

    # the IdP account has no password: password sign-in refuses it, whatever is typed
    async with site.browser() as browser:
        refused = await browser.post(
            "/login",
            data={"tenant": TENANT, "username": account.username, "password": "x" * 20},
        )
        assert refused.status_code == 401


async def test_a_later_sign_in_takes_the_role_the_idp_gives_now(
    site: ConsoleSite, idp: FakeIdp
) -> None:
    async with site.browser() as browser:
        assert (await _through_idp(browser)).status_code == 200
    idp.person.roles = ["alama-managers"]
    async with site.browser() as browser:
        assert (await _through_idp(browser)).status_code == 200
    accounts = await site.console.store.accounts(TENANT)
    assert [(a.username, a.role) for a in accounts] == [("oidc:jane", Role.CREDIT_MANAGER)]
    log = await site.console.store.account_actions(TENANT)
    assert [(x.actor, x.action, x.detail) for x in log] == [
        ("identity provider", "role", {"from": "risk_officer", "to": "credit_manager"})
    ]


async def test_a_token_signed_by_another_key_is_refused(
    site: ConsoleSite, idp: FakeIdp, caplog: pytest.LogCaptureFixture
) -> None:
    idp.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    async with site.browser() as browser:
        refused = await _through_idp(browser)
        assert refused.status_code == 401
        assert "could not be verified" in refused.text
        assert "alama_console_session" not in browser.cookies
    assert "BadSignatureError" in caplog.text
    assert await site.console.store.accounts(TENANT) == []


async def test_a_wrong_nonce_or_state_is_refused(
    site: ConsoleSite, idp: FakeIdp, caplog: pytest.LogCaptureFixture
) -> None:
    idp.nonce_override = "a-nonce-this-sign-in-never-sent"
    async with site.browser() as browser:
        refused = await _through_idp(browser)
        assert refused.status_code == 401 and "could not be verified" in refused.text
    assert "Invalid claim: 'nonce'" in caplog.text
    idp.nonce_override = None
    async with site.browser() as browser:
        refused = await _through_idp(browser, state="a-state-this-browser-never-got")
        assert refused.status_code == 401 and "not started here" in refused.text
    # a callback with no sign-in started in this browser (no state cookie): login CSRF
    async with site.browser() as starter, site.browser() as victim:
        start = await starter.get("/oidc/login")
        async with httpx.AsyncClient() as at_idp:
            back = httpx.URL((await at_idp.get(start.headers["location"])).headers["location"])
        refused = await victim.get(back.path, params=dict(back.params))
        assert refused.status_code == 401
    assert await site.console.store.accounts(TENANT) == []


async def test_no_mapped_role_is_refused_and_makes_nothing(site: ConsoleSite, idp: FakeIdp) -> None:
    idp.person.roles = ["staff", "canteen"]
    async with site.browser() as browser:
        refused = await _through_idp(browser)
        assert refused.status_code == 401
        assert "gives you no role in this console" in refused.text
        assert "alama_console_session" not in browser.cookies
    assert await site.console.store.accounts(TENANT) == []


async def test_a_disabled_idp_account_is_refused(site: ConsoleSite, idp: FakeIdp) -> None:
    async with site.browser() as browser:
        assert (await _through_idp(browser)).status_code == 200
    account = await site.console.store.account_by_subject(TENANT, idp.person.sub)
    assert account is not None
    await site.console.store.set_disabled(TENANT, account.account_id, True, account)
    async with site.browser() as browser:
        refused = await _through_idp(browser)
        assert refused.status_code == 401 and "disabled" in refused.text


async def test_without_an_issuer_there_is_no_idp_sign_in(open_console: OpenConsole) -> None:
    async with open_console() as plain, plain.browser() as browser:
        assert 'id="oidc-sign-in"' not in (await browser.get("/login")).text
        assert (await browser.get("/oidc/login")).status_code == 404
