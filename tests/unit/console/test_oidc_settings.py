"""OIDC sign-in without infrastructure: settings that refuse an incomplete or secret-less
identity provider outside development mode, and the IdP roles a person's claims map to."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from services.common.settings import InfraSettings, UnsafeSettings
from services.console.people import Role, role_from_claims
from services.console.settings import ConsoleSettings

STRONG = {
    "infra": InfraSettings(postgres_dsn=f"postgresql://alama:{'k' * 40}@db:5432/alama"),
    "member_pseudonym_key": SecretStr("p" * 40),
    "dev_mode": False,
}
OIDC = {
    "oidc_issuer": "https://idp.sacco.example/realms/staff",
    "oidc_client_id": "alama-console",
    "oidc_tenant": "sacco-a",
    "oidc_roles": {"reviewers": "risk_officer"},
}


def test_oidc_is_off_without_an_issuer_and_asks_for_no_secret() -> None:
    settings = ConsoleSettings(**STRONG)  # type: ignore[arg-type]
    assert settings.oidc_issuer == "" and settings.oidc_client_secret is None


def test_oidc_without_its_secrets_is_refused_outside_development_mode() -> None:
    with pytest.raises(ValidationError, match="OIDC_CLIENT_SECRET, ALAMA_CONSOLE_OIDC_STATE"):
        ConsoleSettings(**STRONG, **OIDC)  # type: ignore[arg-type]
    with pytest.raises(UnsafeSettings, match="OIDC_STATE_SECRET"):  # present but weak
        ConsoleSettings(
            **STRONG,  # type: ignore[arg-type]
            **OIDC,
            oidc_client_secret=SecretStr("c" * 40),
            oidc_state_secret=SecretStr("dev-only-state"),
        )
    strong = ConsoleSettings(
        **STRONG,  # type: ignore[arg-type]
        **OIDC,
        oidc_client_secret=SecretStr("c" * 40),
        oidc_state_secret=SecretStr("s" * 40),
    )
    assert strong.oidc_roles == {"reviewers": "risk_officer"}
    # development mode: a public client and a per-process state key will do
    assert ConsoleSettings(**OIDC, dev_mode=True).oidc_client_secret is None  # type: ignore[arg-type]


def test_oidc_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="OIDC_TENANT"):
        ConsoleSettings(**{**OIDC, "oidc_tenant": ""}, dev_mode=True)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown console roles"):
        ConsoleSettings(**{**OIDC, "oidc_roles": {"x": "superuser"}}, dev_mode=True)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="https"):
        ConsoleSettings(
            **STRONG,  # type: ignore[arg-type]
            **{**OIDC, "oidc_issuer": "http://idp.example"},
            oidc_client_secret=SecretStr("c" * 40),
            oidc_state_secret=SecretStr("s" * 40),
        )


@pytest.mark.parametrize(
    ("claims", "claim", "expected"),
    [
        ({"roles": ["staff", "reviewers"]}, "roles", Role.RISK_OFFICER),
        ({"roles": "managers"}, "roles", Role.CREDIT_MANAGER),
        ({"roles": ["reviewers", "admins"]}, "roles", Role.ADMIN),  # the mapping's order wins
        ({"realm_access": {"roles": ["reviewers"]}}, "realm_access.roles", Role.RISK_OFFICER),
        ({"roles": ["staff"]}, "roles", None),
        ({"groups": ["reviewers"]}, "roles", None),
        ({"roles": 7}, "roles", None),
    ],
)
def test_the_first_mapped_idp_role_a_person_holds_is_their_console_role(
    claims: dict[str, object], claim: str, expected: Role | None
) -> None:
    mapping = {"admins": "admin", "managers": "credit_manager", "reviewers": "risk_officer"}
    assert role_from_claims(claims, claim, mapping) == expected


def _oidc_settings(**changes: Any) -> ConsoleSettings:
    """With OIDC on, in development mode unless `changes` say otherwise."""
    values: dict[str, Any] = {**OIDC, "dev_mode": True, **changes}
    return ConsoleSettings(**values)


def test_the_post_logout_redirect_is_the_login_page_unless_set_and_then_absolute() -> None:
    assert _oidc_settings().oidc_post_logout_redirect_url == ""  # the console's own /login
    back = "https://console.sacco.example/login"
    assert _oidc_settings(oidc_post_logout_redirect_url=back).oidc_post_logout_redirect_url == back
    with pytest.raises(ValidationError, match="POST_LOGOUT_REDIRECT_URL"):
        _oidc_settings(oidc_post_logout_redirect_url="/login")
    with pytest.raises(ValidationError, match="POST_LOGOUT_REDIRECT_URL"):  # https outside dev
        _oidc_settings(
            **STRONG,
            oidc_client_secret=SecretStr("c" * 40),
            oidc_state_secret=SecretStr("s" * 40),
            oidc_post_logout_redirect_url="http://console.sacco.example/login",
        )


def test_the_post_logout_redirect_reads_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALAMA_CONSOLE_OIDC_POST_LOGOUT_REDIRECT_URL", "http://localhost:8090/login")
    assert _oidc_settings().oidc_post_logout_redirect_url == "http://localhost:8090/login"
