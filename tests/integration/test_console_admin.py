"""The administrators' accounts page through the app, on the real PostgreSQL: only an admin sees
it, every change needs the session's CSRF token and is logged as the admin's, bad input changes
nothing and says why, and an admin cannot lock themself out of administration."""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator

import httpx
import pytest

from services.console.people import Role
from services.console.store import Account

from .conftest import ConsoleSite, OpenConsole, csrf_of

pytestmark = pytest.mark.integration

TENANT = "sacco-admin"
PASSWORD = "a long enough password 1"


@pytest.fixture
async def site(open_console: OpenConsole) -> AsyncIterator[ConsoleSite]:
    async with open_console(lockout_failures=2) as opened:
        people = opened.console.people
        for username, role, tenant in (
            ("ada", Role.ADMIN, TENANT),
            ("rita", Role.RISK_OFFICER, TENANT),
            ("otto", Role.ADMIN, "other-sacco"),
        ):
            await people.add(
                tenant=tenant,
                username=username,
                display_name=username.title(),
                role=role,
                password=PASSWORD,
            )
        yield opened


@contextlib.asynccontextmanager
async def _signed_in(
    site: ConsoleSite, username: str, tenant: str = TENANT
) -> AsyncIterator[httpx.AsyncClient]:
    async with site.browser() as browser:
        answer = await browser.post(
            "/login", data={"tenant": tenant, "username": username, "password": PASSWORD}
        )
        assert answer.status_code == 303, answer.text
        yield browser


async def _account(site: ConsoleSite, username: str, tenant: str = TENANT) -> Account:
    account = await site.console.store.account(tenant, username)
    assert account is not None
    return account


async def test_only_an_admin_sees_the_accounts_of_their_own_sacco(site: ConsoleSite) -> None:
    async with site.browser() as nobody:
        assert (await nobody.get("/admin")).headers["location"].startswith("/login")
        # nor are its metrics on the port staff reach (Prometheus has a port of its own)
        assert (await nobody.get("/metrics")).status_code == 404
    async with (
        _signed_in(site, "rita") as rita,
        _signed_in(site, "ada") as ada,
        _signed_in(site, "otto", "other-sacco") as otto,
    ):
        assert (await rita.get("/admin")).status_code == 403
        assert 'href="/admin"' not in (await rita.get("/queue")).text
        listing = await ada.get("/admin")
        assert listing.status_code == 200
        assert 'id="account-rita"' in listing.text and 'id="account-ada"' in listing.text
        assert "otto" not in listing.text  # another SACCO's
        assert 'href="/admin"' in (await ada.get("/queue")).text
        # an admin of another SACCO cannot touch this one's accounts (unknown, not forbidden)
        rita_id = (await _account(site, "rita")).account_id
        answer = await otto.post(
            f"/admin/accounts/{rita_id}/disable",
            data={"csrf_token": csrf_of(await otto.get("/admin"))},
        )
        assert answer.status_code == 404
    assert not (await _account(site, "rita")).disabled


async def test_adding_an_account_refuses_bad_input_and_changes_nothing(site: ConsoleSite) -> None:
    async with _signed_in(site, "ada") as ada:
        csrf = csrf_of(await ada.get("/admin"))
        form = {"username": "neo", "display_name": "Neo", "role": "auditor", "csrf_token": csrf}
        for changed, status, says in (
            ({"password": "short"}, 400, "at least 12 characters"),
            ({"password": PASSWORD, "username": "rita"}, 409, "There is an account 'rita'"),
            ({"password": PASSWORD, "role": "superuser"}, 400, "There is no role 'superuser'"),
            ({"password": PASSWORD, "username": "oidc:neo"}, 400, "A user name is"),
        ):
            answer = await ada.post("/admin/accounts", data=form | changed)
            assert answer.status_code == status
            assert says in html.unescape(answer.text) and 'id="admin-error"' in answer.text
        assert [a.username for a in await site.console.store.accounts(TENANT)] == ["ada", "rita"]
        # without the session's CSRF token: refused, nothing added
        answer = await ada.post(
            "/admin/accounts", data=form | {"csrf_token": "x", "password": PASSWORD}
        )
        assert answer.status_code == 403
        assert await site.console.store.account(TENANT, "neo") is None

        added = await ada.post("/admin/accounts", data=form | {"password": PASSWORD})
        assert added.status_code == 303 and added.headers["location"] == "/admin?done=add"
        page = await ada.get(added.headers["location"])
        assert "The account was added." in page.text and 'id="account-neo"' in page.text
    neo = await _account(site, "neo")
    assert neo.role == Role.AUDITOR and neo.display_name == "Neo"
    async with _signed_in(site, "neo"):
        pass  # the new person signs in with the password given
    log = await site.console.store.account_actions(TENANT)
    assert [(x.username, x.actor, x.action, x.detail) for x in log] == [
        ("neo", "ada", "add", {"role": "auditor"})
    ]


async def test_role_unlock_disable_and_enable_are_attributed(site: ConsoleSite) -> None:
    rita_id = (await _account(site, "rita")).account_id
    async with _signed_in(site, "rita") as rita, _signed_in(site, "ada") as ada:
        csrf = csrf_of(await ada.get("/admin"))
        base = f"/admin/accounts/{rita_id}"

        answer = await ada.post(f"{base}/role", data={"role": "credit_manager", "csrf_token": csrf})
        assert answer.status_code == 303
        assert (await _account(site, "rita")).role == Role.CREDIT_MANAGER
        answer = await ada.post(f"{base}/role", data={"role": "boss", "csrf_token": csrf})
        assert answer.status_code == 400 and "There is no role" in answer.text
        assert (await _account(site, "rita")).role == Role.CREDIT_MANAGER

        # two failed sign-ins lock rita; ada unlocks her
        async with site.browser() as someone:
            for _ in range(2):
                await someone.post(
                    "/login", data={"tenant": TENANT, "username": "rita", "password": "wrong" * 3}
                )
        assert (await _account(site, "rita")).locked_until is not None
        assert 'action="' + base + '/unlock"' in (await ada.get("/admin")).text
        assert (await ada.post(f"{base}/unlock", data={"csrf_token": csrf})).status_code == 303
        assert (await _account(site, "rita")).locked_until is None

        # disabled: her open session ends and she cannot sign in; enabled: she can again
        assert (await rita.get("/queue")).status_code == 200
        assert (await ada.post(f"{base}/disable", data={"csrf_token": csrf})).status_code == 303
        assert (await rita.get("/queue")).status_code == 303
        async with site.browser() as again:
            refused = await again.post(
                "/login", data={"tenant": TENANT, "username": "rita", "password": PASSWORD}
            )
            assert refused.status_code == 401
        assert (await ada.post(f"{base}/enable", data={"csrf_token": csrf})).status_code == 303
        async with _signed_in(site, "rita"):
            pass  # signs in again

        page = (await ada.get("/admin")).text
        assert 'id="account-log"' in page
    log = await site.console.store.account_actions(TENANT)
    assert [(x.username, x.actor, x.action) for x in reversed(log)] == [
        ("rita", "ada", "role"),
        ("rita", "ada", "unlock"),
        ("rita", "ada", "disable"),
        ("rita", "ada", "enable"),
    ]
    assert log[-1].detail == {"from": "risk_officer", "to": "credit_manager"}


async def test_an_admin_cannot_demote_or_disable_themself(site: ConsoleSite) -> None:
    ada_id = (await _account(site, "ada")).account_id
    async with _signed_in(site, "ada") as ada:
        csrf = csrf_of(await ada.get("/admin"))
        demoted = await ada.post(
            f"/admin/accounts/{ada_id}/role", data={"role": "auditor", "csrf_token": csrf}
        )
        assert demoted.status_code == 400 and "from yourself" in demoted.text
        disabled = await ada.post(f"/admin/accounts/{ada_id}/disable", data={"csrf_token": csrf})
        assert disabled.status_code == 400 and "your own account" in disabled.text
        assert (await ada.get("/admin")).status_code == 200
    ada_now = await _account(site, "ada")
    assert ada_now.role == Role.ADMIN and not ada_now.disabled
    assert await site.console.store.account_actions(TENANT) == []
