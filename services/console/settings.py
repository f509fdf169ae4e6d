"""Console settings (environment prefix ``ALAMA_CONSOLE_``)."""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.member_rights import pseudonym_key_field
from services.common.members import TENANT_PATTERN
from services.common.postgres import is_sql_identifier
from services.common.settings import ConsumerSettings, service_port
from services.common.topics import (
    APPEALS,
    CREDIT_DECISIONS,
    LOAN_APPLICATIONS,
    LOAN_OUTCOMES,
    MEMBER_ERASURES,
    MEMBER_ERASURES_COMPLETED,
    MEMBER_EXPORT_PARTS,
    MEMBER_EXPORTS,
    REVIEW_OUTCOMES,
)


class ConsoleSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_CONSOLE_", extra="ignore")

    service_name: str = "console"
    host: str = "127.0.0.1"
    port: int = service_port(8090)
    #: Prometheus on a port of its own, never beside the pages staff reach (0 leaves it off)
    metrics_port: int = service_port(9109)
    consumer_group: str = "console"
    max_batch: int = Field(default=256, ge=1)
    # off the synchronous path: a fetch waits for a batch (at most 200 ms), so each decision does
    # not cost its own fetch, commit and transaction (with the defaults it did, at 3.5 CPU ms each)
    consumer_fetch_min_bytes: int = Field(default=65536, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=200, ge=0, le=10_000)
    decisions_topic: str = CREDIT_DECISIONS
    applications_topic: str = LOAN_APPLICATIONS
    review_outcomes_topic: str = REVIEW_OUTCOMES
    appeals_topic: str = APPEALS
    loan_outcomes_topic: str = LOAN_OUTCOMES
    erasures_topic: str = MEMBER_ERASURES
    erasures_completed_topic: str = MEMBER_ERASURES_COMPLETED
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    #: keys the erased-members set (tenant-scoped pseudonyms), so no raw id outlives an erasure
    member_pseudonym_key: SecretStr = pseudonym_key_field()
    db_schema: str = Field(default="console", description="PostgreSQL schema of the console")
    explanation_target: str = Field(
        default=f"127.0.0.1:{service_port(50052)}",
        description="the explanation service's gRPC address (a decision's SHAP and attention)",
    )
    explanation_timeout_seconds: float = Field(default=2.0, gt=0)
    scoring_target: str = Field(
        default=f"127.0.0.1:{service_port(50051)}",
        description="the scoring service's gRPC address (the serving model's metrics and card);"
        " empty: no model page",
    )
    audit_target: str = Field(
        default=f"127.0.0.1:{service_port(50053)}",
        description="the audit service's gRPC address (an application's trail, verified);"
        " empty: no trail page",
    )
    outcomes_metrics_url: str = Field(
        default=f"http://127.0.0.1:{service_port(9107)}/metrics",
        description="the outcomes service's metrics endpoint (live AUC and ECE); empty: none",
    )
    drift_metrics_url: str = Field(
        default=f"http://127.0.0.1:{service_port(9106)}/metrics",
        description="the drift service's metrics endpoint (its PSI gauges); empty: none",
    )
    oversight_days: int = Field(default=30, ge=1, le=3650, description="oversight window")
    publish_timeout_seconds: float = Field(
        default=5.0, gt=0, description="how long an outcome waits for the broker's ack"
    )
    # people
    session_idle_minutes: float = Field(default=30, gt=0, description="idle sign-out")
    session_max_hours: float = Field(default=8, gt=0, description="sign-out however active")
    lockout_failures: int = Field(default=5, ge=1, description="failed sign-ins before lock")
    lockout_minutes: float = Field(default=15, gt=0, description="how long an account stays locked")
    cookie_secure: bool = Field(
        default=True,
        description="session cookie only over HTTPS; off only in development mode (plain HTTP)",
    )
    # review
    claim_minutes: float = Field(
        default=30, gt=0, description="a claim nobody acted on returns the item to the queue"
    )
    review_sla_hours: float = Field(default=24, gt=0, description="an open item older breaches")
    four_eyes_amount_kes: float = Field(
        default=500_000,
        ge=0,
        description="approving more than this needs a second person (tenants without their own)",
    )
    four_eyes_amounts: dict[str, float] = Field(
        default_factory=dict, description='tenant -> its own amount, e.g. {"sacco-a": 200000}'
    )
    page_size: int = Field(default=50, ge=1, le=500, description="queue rows per page")
    # sign-in through the SACCO's identity provider (OpenID Connect); off while the issuer is empty
    oidc_issuer: str = Field(
        default="",
        description="the IdP's issuer URL (its discovery document is read from"
        " <issuer>/.well-known/openid-configuration); empty: password sign-in only",
    )
    oidc_client_id: str = Field(default="", description="this console's client id at the IdP")
    #: None, not "", when unset: an empty secret would be refused as weak with OIDC off
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="the client secret (without one: a public client with PKCE)"
    )
    oidc_tenant: str = Field(default="", description="the SACCO the IdP's people belong to")
    oidc_role_claim: str = Field(
        default="roles",
        description="the ID token claim holding the person's IdP roles (dotted for nested"
        " claims, e.g. realm_access.roles)",
    )
    oidc_roles: dict[str, str] = Field(
        default_factory=dict,
        description='IdP role -> console role, e.g. {"alama-reviewers": "risk_officer"}; the'
        " first entry the person holds wins",
    )
    oidc_redirect_url: str = Field(
        default="",
        description="the callback URL registered at the IdP; empty: derived from the request"
        " (set it behind a proxy that terminates TLS)",
    )
    oidc_post_logout_redirect_url: str = Field(
        default="",
        description="where the IdP sends the browser back after signing the person out there"
        " (post_logout_redirect_uri: register it at the IdP); empty: the console's /login,"
        " derived from the request (set it behind a proxy that terminates TLS)",
    )
    oidc_scope: str = Field(default="openid profile email", description="scopes asked for")
    oidc_state_secret: SecretStr | None = Field(
        default=None,
        description="signs the short-lived cookie holding the sign-in's state, nonce and PKCE"
        " verifier (random per process in development mode when unset)",
    )

    @field_validator("db_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not is_sql_identifier(value):
            raise ValueError("db_schema must be a lower-case SQL identifier")
        return value

    @field_validator("four_eyes_amounts")
    @classmethod
    def _tenants(cls, value: dict[str, float]) -> dict[str, float]:
        for tenant, amount in value.items():
            if not re.fullmatch(TENANT_PATTERN, tenant) or amount < 0:
                raise ValueError(f"four_eyes_amounts: bad entry {tenant!r}: {amount}")
        return value

    @model_validator(mode="after")
    def _cookies_secure_outside_development(self) -> Self:
        if not self.cookie_secure and not self.dev_mode:
            raise ValueError(
                "ALAMA_CONSOLE_COOKIE_SECURE=false is only accepted in development mode: a"
                " session cookie sent over plain HTTP can be read on the network"
            )
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> Self:
        """With an issuer, everything sign-in needs; outside development mode its secrets too
        (the shared rule then refuses them if weak or `dev-only-`)."""
        if not self.oidc_issuer:
            return self
        from services.console.people import Role  # people imports this module

        missing = [
            name
            for name, value in (
                ("OIDC_CLIENT_ID", self.oidc_client_id),
                ("OIDC_TENANT", self.oidc_tenant),
                ("OIDC_ROLES", self.oidc_roles),
            )
            if not value
        ]
        if not self.dev_mode:
            missing += [
                name
                for name, secret in (
                    ("OIDC_CLIENT_SECRET", self.oidc_client_secret),
                    ("OIDC_STATE_SECRET", self.oidc_state_secret),
                )
                if secret is None
            ]
        if missing:
            raise ValueError(
                "ALAMA_CONSOLE_OIDC_ISSUER is set, so these are needed too: "
                + ", ".join(f"ALAMA_CONSOLE_{name}" for name in missing)
            )
        if not re.fullmatch(TENANT_PATTERN, self.oidc_tenant):
            raise ValueError(f"ALAMA_CONSOLE_OIDC_TENANT must match {TENANT_PATTERN}")
        known = {str(role) for role in Role}
        unknown = sorted(set(self.oidc_roles.values()) - known)
        if unknown:
            raise ValueError(
                f"ALAMA_CONSOLE_OIDC_ROLES maps to unknown console roles {unknown};"
                f" known: {sorted(known)}"
            )
        if not self.oidc_issuer.startswith("https://") and not self.dev_mode:
            raise ValueError("ALAMA_CONSOLE_OIDC_ISSUER must be https:// outside development mode")
        back = urlsplit(self.oidc_post_logout_redirect_url)
        schemes = ("https", "http") if self.dev_mode else ("https",)
        if self.oidc_post_logout_redirect_url and (back.scheme not in schemes or not back.netloc):
            raise ValueError(
                "ALAMA_CONSOLE_OIDC_POST_LOGOUT_REDIRECT_URL must be an absolute https:// URL"
                " (http:// too in development mode)"
            )
        return self

    def four_eyes_amount(self, tenant: str) -> float:
        return self.four_eyes_amounts.get(tenant, self.four_eyes_amount_kes)
