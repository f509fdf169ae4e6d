"""The administrators' page of their SACCO's accounts: who signs in and how, add a password
account, change a role, unlock, disable or enable. Every change is CSRF-checked and logged with
who made it (the store's account actions); a refused change shows why and changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.people import (
    MIN_PASSWORD_CHARS,
    USERNAME_PATTERN,
    AccountRefused,
    Role,
    WeakPassword,
    role_of,
)
from services.console.store import Session
from services.console.web import checked, console_of, page, session_of

router = APIRouter()
ADMINS = frozenset({Role.ADMIN})
#: what a change reads as in the notice after it (`?done=`)
DONE = {
    "add": "The account was added.",
    "role": "The role was changed.",
    "unlock": "The account was unlocked.",
    "disable": "The account was disabled; its sessions have ended.",
    "enable": "The account was enabled.",
}


@router.get("/admin", response_class=HTMLResponse)
async def accounts_page(request: Request, done: str = "") -> HTMLResponse:
    session = await session_of(request, roles=ADMINS)
    return await _page(request, session, notice=DONE.get(done, ""))


async def _page(
    request: Request,
    session: Session,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    store = console_of(request).store
    tenant = session.account.tenant_id
    context: dict[str, Any] = {
        "accounts": await store.accounts(tenant),
        "log": await store.account_actions(tenant),
        "roles": list(Role),
        "now": datetime.now(UTC),
        "notice": notice,
        "error": error,
        "form": form or {},
        "min_password": MIN_PASSWORD_CHARS,
        "username_pattern": USERNAME_PATTERN,
    }
    return page(request, "admin.html", session, status=status, **context)


def _done(action: str) -> RedirectResponse:
    return RedirectResponse(f"/admin?done={action}", status_code=303)


def _account_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AccountRefused("There is no such account.", status=404) from None


@router.post("/admin/accounts", response_class=HTMLResponse)
async def add_account(
    request: Request,
    username: str = Form(max_length=128),
    display_name: str = Form("", max_length=128),
    role: str = Form(max_length=32),
    password: str = Form(max_length=1024),
    csrf_token: str | None = Form(None),
) -> Response:
    session = await checked(request, csrf_token, roles=ADMINS)
    try:
        await console_of(request).people.add(
            tenant=session.account.tenant_id,
            username=username.strip(),
            display_name=display_name,
            role=role_of(role),
            password=password,
            actor=session.account,
        )
    except (AccountRefused, WeakPassword) as exc:
        return await _page(
            request,
            session,
            error=_sentence(exc),
            status=exc.status if isinstance(exc, AccountRefused) else 400,
            form={"username": username, "display_name": display_name, "role": role},
        )
    return _done("add")


@router.post("/admin/accounts/{account_id}/role", response_class=HTMLResponse)
async def change_role(
    request: Request,
    account_id: str,
    role: str = Form(max_length=32),
    csrf_token: str | None = Form(None),
) -> Response:
    session = await checked(request, csrf_token, roles=ADMINS)
    try:
        await console_of(request).people.set_role(session.account, _account_id(account_id), role)
    except AccountRefused as exc:
        return await _page(request, session, error=str(exc), status=exc.status)
    return _done("role")


@router.post("/admin/accounts/{account_id}/unlock", response_class=HTMLResponse)
async def unlock(
    request: Request, account_id: str, csrf_token: str | None = Form(None)
) -> Response:
    session = await checked(request, csrf_token, roles=ADMINS)
    try:
        await console_of(request).people.unlock(session.account, _account_id(account_id))
    except AccountRefused as exc:
        return await _page(request, session, error=str(exc), status=exc.status)
    return _done("unlock")


@router.post("/admin/accounts/{account_id}/{change}", response_class=HTMLResponse)
async def disable_or_enable(
    request: Request, account_id: str, change: str, csrf_token: str | None = Form(None)
) -> Response:
    session = await checked(request, csrf_token, roles=ADMINS)
    if change not in ("disable", "enable"):
        return await _page(request, session, error="There is no such change.", status=404)
    try:
        await console_of(request).people.set_disabled(
            session.account, _account_id(account_id), change == "disable"
        )
    except AccountRefused as exc:
        return await _page(request, session, error=str(exc), status=exc.status)
    return _done(change)


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
