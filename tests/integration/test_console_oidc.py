"""Sign-in and sign-out through an identity provider, against a real one in the test: the small
OpenID provider of `tests/oidc_provider.py` (discovery, JWKS, authorize, token with PKCE,
end_session) served by uvicorn on a free port. The console runs on the real PostgreSQL; the
test is the browser, following each redirect by hand between the console and the provider."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from joserfc.jwk import RSAKey

from services.console.people import (
    OIDC_USERNAME_PREFIX,
    SEALED_PREFIX,
    SESSION_COOKIE,
    Role,
    token_hash,
)
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeIdp, serving_idp

from .conftest import CONSOLE_URL, ConsoleSite, OpenConsole, csrf_of

pytestmark = pytest.mark.integration

TENANT = "sacco-idp"
ROLES = {"alama-reviewers": "risk_officer", "alama-managers": "credit_manager"}
PASSWORD = "a long enough password 1"
OIDC = {
    "oidc_client_id": CLIENT_ID,
    "oidc_client_secret": CLIENT_SECRET,
    "oidc_tenant": TENANT,
    "oidc_roles": ROLES,
    "oidc_state_secret": "t" * 40,
}


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdp]:
    async with serving_idp() as provider:
        yield provider


@pytest.fixture
async def site(open_console: OpenConsole, idp: FakeIdp) -> AsyncIterator[ConsoleSite]:
    async with open_console(oidc_issuer=idp.url, **OIDC) as opened:
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


def _idp_sign_out_target(page: httpx.Response) -> httpx.URL:
    """Where the sign-out page sends the browser on to (its meta refresh and its link)."""
    found = re.search(r'<a id="continue" href="([^"]+)"', page.text)
    assert found, page.text
    target = html.unescape(found.group(1))
    assert f'content="0;url={found.group(1)}"' in page.text
    return httpx.URL(target)


async def _sign_out(browser: httpx.AsyncClient) -> httpx.Response:
    csrf = csrf_of(await browser.get("/queue"))
    return await browser.post("/logout", data={"csrf_token": csrf})


async def test_signing_out_ends_the_session_and_signs_out_at_the_idp(
    site: ConsoleSite, idp: FakeIdp
) -> None:
    async with site.browser() as browser:
        assert (await _through_idp(browser)).status_code == 200
        session_token = browser.cookies[SESSION_COOKIE]
        # a state-changing POST like every other: without the session's CSRF token, refused
        assert (await browser.post("/logout", data={"csrf_token": "x"})).status_code == 403
        assert (await browser.get("/logout")).status_code == 405
        assert (await browser.get("/queue")).status_code == 200  # still signed in
        # the table keeps the ID token sealed: no part of it readable there
        async with site.console.store.pool.acquire() as conn:
            stored = await conn.fetchval(
                f"SELECT id_token FROM {site.settings.db_schema}.sessions WHERE token_hash = $1",
                token_hash(session_token),
            )
        assert stored.startswith(SEALED_PREFIX)
        assert not any(part in stored for part in idp.issued[-1].split("."))

        out = await _sign_out(browser)
        assert out.status_code == 200, out.text
        assert SESSION_COOKIE not in browser.cookies
        target = _idp_sign_out_target(out)
        assert str(target.copy_with(query=None)) == f"{idp.url}/end_session"
        assert dict(target.params) == {
            "id_token_hint": idp.issued[-1],  # the ID token this sign-in received
            "post_logout_redirect_uri": f"{CONSOLE_URL}/login",
            "client_id": CLIENT_ID,
        }
        async with httpx.AsyncClient() as at_idp:
            back = await at_idp.get(target)
        assert back.status_code == 302
        assert back.headers["location"] == f"{CONSOLE_URL}/login"
        assert idp.sign_outs == [dict(target.params)]
        landed = await browser.get("/login")
        assert landed.status_code == 200 and 'id="login-notice"' not in landed.text

    # the old cookie opens nothing: the session is gone from the store
    async with site.browser() as replay:
        replay.cookies.set(SESSION_COOKIE, session_token)
        assert (await replay.get("/queue")).status_code == 303
    async with site.console.store.pool.acquire() as conn:
        left = await conn.fetchval(f"SELECT count(*) FROM {site.settings.db_schema}.sessions")
    assert left == 0


async def test_the_post_logout_redirect_can_be_set(open_console: OpenConsole, idp: FakeIdp) -> None:
    back = "https://console.sacco.example/login"
    async with (
        open_console(oidc_issuer=idp.url, oidc_post_logout_redirect_url=back, **OIDC) as site,
        site.browser() as browser,
    ):
        assert (await _through_idp(browser)).status_code == 200
        target = _idp_sign_out_target(await _sign_out(browser))
        assert target.params["post_logout_redirect_uri"] == back


async def test_a_password_sign_out_does_not_go_to_the_idp(site: ConsoleSite, idp: FakeIdp) -> None:
    await site.console.people.add(
        tenant=TENANT, username="petra", display_name="Petra", role=Role.AUDITOR, password=PASSWORD
    )
    async with site.browser() as browser:
        signed_in = await browser.post(
            "/login", data={"tenant": TENANT, "username": "petra", "password": PASSWORD}
        )
        assert signed_in.status_code == 303
        out = await _sign_out(browser)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert SESSION_COOKIE not in browser.cookies
        assert (await browser.get("/queue")).status_code == 303
    assert idp.sign_outs == []


async def test_an_idp_without_end_session_leaves_its_session_open_and_says_so(
    site: ConsoleSite, idp: FakeIdp
) -> None:
    idp.end_session = False
    async with site.browser() as browser:
        assert (await _through_idp(browser)).status_code == 200
        session_token = browser.cookies[SESSION_COOKIE]
        out = await _sign_out(browser)
        assert out.status_code == 303
        assert out.headers["location"] == "/login?signed_out=idp-open"
        assert SESSION_COOKIE not in browser.cookies
        landed = await browser.get(out.headers["location"])
        assert landed.status_code == 200
        assert 'id="login-notice"' in landed.text and "may still be open" in landed.text
    async with site.browser() as replay:
        replay.cookies.set(SESSION_COOKIE, session_token)
        assert (await replay.get("/queue")).status_code == 303
    assert idp.sign_outs == []


async def test_an_idp_that_cannot_be_reached_still_ends_the_console_session(
    site: ConsoleSite, idp: FakeIdp, caplog: pytest.LogCaptureFixture
) -> None:
    async with site.browser() as browser:
        assert (await _through_idp(browser)).status_code == 200
        session_token = browser.cookies[SESSION_COOKIE]
        csrf = csrf_of(await browser.get("/queue"))
        await idp.stop()
        out = await browser.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert out.headers["location"] == "/login?signed_out=idp-open"
        assert SESSION_COOKIE not in browser.cookies
    assert "cannot be reached to sign out" in caplog.text
    async with site.browser() as replay:
        replay.cookies.set(SESSION_COOKIE, session_token)
        assert (await replay.get("/queue")).status_code == 303


async def test_plain_id_tokens_left_by_earlier_versions_are_dropped_at_start(
    site: ConsoleSite, idp: FakeIdp
) -> None:
    """Versions before the sealing stored the ID token as received: the schema step at start
    clears those, and leaves sealed ones as they are."""
    schema = site.settings.db_schema
    tokens = []
    for _ in range(2):
        async with site.browser() as browser:
            assert (await _through_idp(browser)).status_code == 200
            tokens.append(token_hash(browser.cookies[SESSION_COOKIE]))
    old, new = tokens
    async with site.console.store.pool.acquire() as conn:
        await conn.execute(
            f"UPDATE {schema}.sessions SET id_token = $1 WHERE token_hash = $2",
            idp.issued[-1],
            old,
        )
        sealed = await conn.fetchval(
            f"SELECT id_token FROM {schema}.sessions WHERE token_hash = $1", new
        )
    await site.console.store.create_schema()
    async with site.console.store.pool.acquire() as conn:
        after = dict(
            await conn.fetch(
                f"SELECT token_hash, id_token FROM {schema}.sessions"
                " WHERE token_hash = ANY($1::bytea[])",
                tokens,
            )
        )
    assert after == {old: None, new: sealed}
    assert sealed.startswith(SEALED_PREFIX)
