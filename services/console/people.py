"""People and their sessions: roles, argon2 password hashes, sign-in with lock-out, server-side
sessions with idle and absolute expiry, and a CSRF token per session.

A session token is 32 random bytes in an HttpOnly, SameSite=Strict cookie; the database keeps
only its SHA-256, so a copy of the table signs nobody in. Every form and htmx request carries the
session's CSRF token, compared in constant time.

An identity-provider sign-in's ID token (the `id_token_hint` of the sign-out at the IdP) is kept
sealed with a key derived from the session token (`seal_id_token`): the database holds only the
token's hash, so it cannot open what it stores either, and a copy of the table hands no one a
person's signed identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.console.settings import ConsoleSettings
from services.console.store import SEALED_PREFIX, Account, ConsoleStore, Session

log = logging.getLogger(__name__)

SESSION_COOKIE = "alama_console_session"
MIN_PASSWORD_CHARS = 12
#: password accounts' user names; ":" is left out so none can look like an IdP account's
USERNAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
#: prefix of the user names of accounts made at an identity-provider sign-in
OIDC_USERNAME_PREFIX = "oidc:"


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


class AccountRefused(ValueError):
    """An account change that is not allowed or not possible; the message says why."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def role_of(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountRefused(f"There is no role {role!r}.") from None


def role_from_claims(
    claims: Mapping[str, object], claim: str, mapping: Mapping[str, str]
) -> Role | None:
    """The console role an ID token's claims give: the first entry of `mapping` (IdP role ->
    console role, in the operator's order) whose IdP role the person holds. `claim` may be
    dotted for a nested claim (Keycloak's `realm_access.roles`); a single string counts as
    one role. None when no role maps."""
    value: object = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    held: set[str]
    if isinstance(value, str):
        held = {value}
    elif isinstance(value, Iterable):
        held = {v for v in value if isinstance(v, str)}
    else:
        return None
    for idp_role, console_role in mapping.items():
        if idp_role in held:
            return Role(console_role)
    return None


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


def _id_token_key(token: str) -> AESGCM:
    """The key that seals a session's ID token: from the session token itself, which only the
    browser holds (its 256 random bits need no stretching)."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"alama console session id_token"
    ).derive(token.encode())
    return AESGCM(derived)


def seal_id_token(token: str, id_token: str) -> str:
    """`id_token` encrypted and authenticated under the session `token`, bound to that
    session's hash (a sealed token moved to another row does not open)."""
    nonce = secrets.token_bytes(12)
    sealed = _id_token_key(token).encrypt(nonce, id_token.encode(), token_hash(token))
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_id_token(token: str, stored: str | None) -> str | None:
    """The ID token `seal_id_token` stored for this session; None when there is none or it
    does not open (the sign-out then goes on without the IdP's hint)."""
    if not stored:
        return None
    if not stored.startswith(SEALED_PREFIX):
        return None  # not written by this console: never handed on as a hint
    try:
        raw = base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX).encode("ascii"))
        opened = _id_token_key(token).decrypt(raw[:12], raw[12:], token_hash(token))
    except (InvalidTag, ValueError):
        log.warning("a session's sealed ID token did not open; signing out without the hint")
        return None
    return opened.decode()


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
        self,
        *,
        tenant: str,
        username: str,
        display_name: str,
        role: Role,
        password: str,
        actor: Account | None = None,
    ) -> Account:
        """A password account (WeakPassword, or AccountRefused for a bad or taken user name);
        `actor` is the administrator adding it, None from the command line."""
        if not re.fullmatch(USERNAME_PATTERN, username):
            raise AccountRefused(
                "A user name is 1 to 64 letters, digits and . _ @ -, starting with a letter or"
                " digit."
            )
        account_id = await self.store.add_account(
            tenant=tenant,
            username=username,
            display_name=display_name.strip() or username,
            role=str(role),
            password_hash=hash_password(password),
            actor=actor,
        )
        if account_id is None:
            raise AccountRefused(f"There is an account {username!r} already.", status=409)
        account = await self.store.account_by_id(tenant, account_id)
        assert account is not None
        return account

    async def set_role(self, actor: Account, account_id: uuid.UUID, role: str) -> Account:
        target = await self._target(actor, account_id)
        new_role = role_of(role)
        if target.account_id == actor.account_id and new_role != Role.ADMIN:
            raise AccountRefused("You cannot take the administrator role from yourself.")
        if target.oidc_subject:
            raise AccountRefused(
                "This person's role comes from the identity provider at every sign-in; change"
                " it there."
            )
        await self.store.set_role(actor.tenant_id, account_id, str(new_role), actor)
        return target

    async def set_disabled(self, actor: Account, account_id: uuid.UUID, disabled: bool) -> Account:
        target = await self._target(actor, account_id)
        if disabled and target.account_id == actor.account_id:
            raise AccountRefused("You cannot disable your own account.")
        await self.store.set_disabled(actor.tenant_id, account_id, disabled, actor)
        return target

    async def unlock(self, actor: Account, account_id: uuid.UUID) -> Account:
        target = await self._target(actor, account_id)
        await self.store.unlock(actor.tenant_id, account_id, actor)
        return target

    async def _target(self, actor: Account, account_id: uuid.UUID) -> Account:
        """An account of the actor's own tenant (another tenant's reads as unknown)."""
        target = await self.store.account_by_id(actor.tenant_id, account_id)
        if target is None:
            raise AccountRefused("There is no such account.", status=404)
        return target

    async def sign_in_oidc(
        self,
        tenant: str,
        subject: str,
        claims: Mapping[str, object],
        id_token: str | None = None,
    ) -> SignIn:
        """Sign in a person the identity provider vouched for (the ID token already verified):
        their account in `tenant`, keyed by the IdP subject, made at the first sign-in and
        given the role the claims map to at every one. Nothing is made or changed when no
        role maps. The session keeps `id_token` (the token as received) sealed under the session
        token, the hint of the sign-out at the IdP."""
        role = role_from_claims(claims, self.settings.oidc_role_claim, self.settings.oidc_roles)
        if role is None:
            return SignIn(
                refused="Your identity provider gives you no role in this console. Ask an"
                " administrator to grant you one there."
            )
        name = _claim_text(claims, "name") or _claim_text(claims, "preferred_username")
        account = await self.store.account_by_subject(tenant, subject)
        if account is None:
            # the IdP's user name reads well beside actions; taken (two IdP people of that
            # name), the subject, which the IdP keeps unique
            base = _claim_text(claims, "preferred_username") or _claim_text(claims, "email")
            candidates = [base, subject] if base else [subject]
            for username in (f"{OIDC_USERNAME_PREFIX}{c}" for c in candidates):
                if await self.store.add_account(
                    tenant=tenant,
                    username=username[:128],
                    display_name=name or username,
                    role=str(role),
                    password_hash=None,
                    oidc_subject=subject,
                ):
                    break
            account = await self.store.account_by_subject(tenant, subject)
            if account is None:
                return SignIn(refused="No account could be made for you; ask an administrator.")
        if account.disabled:
            return SignIn(refused="This account is disabled; ask an administrator.")
        if account.role != role or (name and account.display_name != name):
            account = await self.store.update_from_idp(
                account.account_id, role=str(role), display_name=name or account.display_name
            )
        await self.store.record_login(account.account_id)
        return await self._open_session(account, id_token)

    async def sign_in(self, tenant: str, username: str, password: str) -> SignIn:
        account = await self.store.account(tenant, username)
        now = datetime.now(UTC)
        if account is None:
            password_matches(_DUMMY_HASH, password)
            return SignIn(refused="Wrong tenant, user name or password.")
        if account.disabled or account.password_hash is None:  # an IdP account has none
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
        return await self._open_session(account)

    async def _open_session(self, account: Account, id_token: str | None = None) -> SignIn:
        token = secrets.token_urlsafe(32)
        await self.store.create_session(
            token_hash(token),
            account.account_id,
            secrets.token_urlsafe(32),
            datetime.now(UTC) + timedelta(hours=self.settings.session_max_hours),
            None if id_token is None else seal_id_token(token, id_token),
        )
        return SignIn(token=token, account=account)

    async def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        return await self.store.touch_session(token_hash(token), self.idle)

    async def sign_out(self, token: str | None) -> str | None:
        """Ends the session; the ID token of an identity-provider sign-in, to sign out there."""
        if not token:
            return None
        return open_id_token(token, await self.store.end_session(token_hash(token)))


def _locked_message(settings: ConsoleSettings) -> str:
    return (
        f"This account is locked after {settings.lockout_failures} failed sign-ins. Try again"
        f" in {settings.lockout_minutes:g} minutes or ask an administrator to unlock it."
    )


def _claim_text(claims: Mapping[str, object], name: str) -> str:
    value = claims.get(name)
    return value.strip()[:128] if isinstance(value, str) else ""
