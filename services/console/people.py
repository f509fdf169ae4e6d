"""People and their sessions: roles, argon2 password hashes, sign-in with lock-out, server-side
sessions with idle and absolute expiry, and a CSRF token per session.

A session token is 32 random bytes in an HttpOnly, SameSite=Strict cookie; the database keeps
only its SHA-256, so a copy of the table signs nobody in. Every form and htmx request carries the
session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.console.settings import ConsoleSettings
from services.console.store import Account, ConsoleStore, Session

SESSION_COOKIE = "alama_console_session"
MIN_PASSWORD_CHARS = 12


class Role(StrEnum):
    LOAN_OFFICER = "loan_officer"
    RISK_OFFICER = "risk_officer"
    CREDIT_MANAGER = "credit_manager"
    AUDITOR = "auditor"
    ADMIN = "admin"


#: who may settle review items (claim, approve, decline, confirm a colleague's proposal)
REVIEWERS = frozenset({Role.RISK_OFFICER, Role.CREDIT_MANAGER})
#: who may lodge a member's appeal (those who deal with members and decisions)
APPEAL_LODGERS = frozenset({Role.LOAN_OFFICER, Role.RISK_OFFICER, Role.CREDIT_MANAGER})
#: who may see the queue and the items (everyone signed in)
READERS = frozenset(Role)

ROLE_NAMES = {
    Role.LOAN_OFFICER: "Loan officer",
    Role.RISK_OFFICER: "Risk officer",
    Role.CREDIT_MANAGER: "Credit manager",
    Role.AUDITOR: "Auditor",
    Role.ADMIN: "Administrator",
}

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
#: verified against when the account does not exist, so a wrong user name takes as long
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf_token, presented)


@dataclass(frozen=True)
class SignIn:
    """The result of a sign-in attempt: a session token, or why not (never which part was
    wrong: an unknown user and a wrong password read the same)."""

    token: str | None = None
    account: Account | None = None
    refused: str | None = None


class People:
    def __init__(self, store: ConsoleStore, settings: ConsoleSettings) -> None:
        self.store = store
        self.settings = settings

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.settings.session_idle_minutes)

    async def add(
        self, *, tenant: str, username: str, display_name: str, role: Role, password: str
    ) -> Account:
        await self.store.add_account(
            tenant=tenant,
            username=username,
            display_name=display_name,
            role=str(role),
            password_hash=hash_password(password),
        )
        account = await self.store.account(tenant, username)
        assert account is not None
        return account

    async def sign_in(self, tenant: str, username: str, password: str) -> SignIn:
        account = await self.store.account(tenant, username)
        now = datetime.now(UTC)
        if account is None:
            password_matches(_DUMMY_HASH, password)
            return SignIn(refused="Wrong tenant, user name or password.")
        if account.disabled:
            password_matches(_DUMMY_HASH, password)
            return SignIn(refused="Wrong tenant, user name or password.")
        if account.locked_until is not None and account.locked_until > now:
            return SignIn(refused=_locked_message(self.settings))
        if not password_matches(account.password_hash, password):
            locked = await self.store.record_failed_login(
                account.account_id,
                limit=self.settings.lockout_failures,
                lock_for=timedelta(minutes=self.settings.lockout_minutes),
            )
            if locked:
                return SignIn(refused=_locked_message(self.settings))
            return SignIn(refused="Wrong tenant, user name or password.")
        await self.store.record_login(account.account_id)
        if _hasher.check_needs_rehash(account.password_hash):
            await self.store.set_password(account.account_id, _hasher.hash(password))
        token = secrets.token_urlsafe(32)
        await self.store.create_session(
            token_hash(token),
            account.account_id,
            secrets.token_urlsafe(32),
            now + timedelta(hours=self.settings.session_max_hours),
        )
        return SignIn(token=token, account=account)

    async def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        return await self.store.touch_session(token_hash(token), self.idle)

    async def sign_out(self, token: str | None) -> None:
        if token:
            await self.store.end_session(token_hash(token))


def _locked_message(settings: ConsoleSettings) -> str:
    return (
        f"This account is locked after {settings.lockout_failures} failed sign-ins. Try again"
        f" in {settings.lockout_minutes:g} minutes or ask an administrator to unlock it."
    )
