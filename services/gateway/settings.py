"""Gateway settings (environment prefix ``ALAMA_GATEWAY_``).

API keys are configured by their SHA-256 only (``ALAMA_GATEWAY_API_KEYS`` as a JSON list of
``{"name", "sha256", "scopes"}``), so a leaked settings dump does not leak a key. The default is
one development key, ``dev-partner-key``, with every partner scope. Like the ``dev-only-`` secrets,
it is refused outside development mode (services.common.settings).

``metrics_port`` is the operator port: /metrics and the API documentation, never the public one.

Load shedding (services.gateway.shedding, services.gateway.rate_limits): bodies are capped per
route class before they are read, each tenant has a rate limit (``rate_limits`` overrides
``rate_limit_default``; the webhook is limited per client address), and one process serves at
most ``max_in_flight`` requests at once, answering 503 beyond that instead of queueing.
Rates use the `limits` notation: ``"100/second"``, ``"6000/minute"``, ``"10 per second"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import ClassVar

from limits import parse
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.member_rights import pseudonym_key_field
from services.common.members import DEV_TENANT, TENANT_PATTERN
from services.common.settings import ServiceSettings, service_port
from services.common.topics import (
    APPEALS,
    LOAN_APPLICATIONS,
    MEMBER_ERASURES,
    MEMBER_ERASURES_COMPLETED,
    MEMBER_EXPORT_PARTS,
    MEMBER_EXPORTS,
    MOBILE_MONEY_TRANSACTIONS,
)

#: The development key's salt and sha256(salt + "dev-partner-key"), never the key itself.
DEV_PARTNER_KEY_SALT = "a1c3e5f7091b2d4f6a8c0e2b4d6f8a0c"
DEV_PARTNER_KEY_SHA256 = "3f6f97f79b8ae376be8e95db8c2b4a69dcdde3783e5cf981d7a7cf7dd6afe2ec"
#: Ceilings the request schemas enforce whatever the settings say (schemas.py).
MAX_CALL_APPLICATIONS = 1000
MAX_WEBHOOK_TRANSACTIONS = 1000


class ApiKey(BaseModel):
    """One partner's API key: who it is, the tenant (SACCO or partner) it acts for, a random
    salt and the SHA-256 of salt + key (hex; `python -m services.gateway api-key` makes both),
    and what it may do. The salt makes a leaked list useless for looking keys up."""

    name: str
    tenant: str = Field(pattern=TENANT_PATTERN)
    salt: str = Field(pattern=r"^[0-9a-f]{32,128}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] = Field(default_factory=list)


def _dev_api_keys() -> list[ApiKey]:
    return [
        ApiKey(
            name="dev-partner",
            tenant=DEV_TENANT,
            salt=DEV_PARTNER_KEY_SALT,
            sha256=DEV_PARTNER_KEY_SHA256,
            scopes=["score:write", "decisions:read", "explanations:read"],
        )
    ]


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_GATEWAY_", extra="ignore")

    development_values: ClassVar[Mapping[str, str]] = {
        DEV_PARTNER_KEY_SHA256: "the development API key (dev-partner-key)"
    }

    service_name: str = "gateway"
    host: str = "127.0.0.1"
    port: int = service_port(8080)
    metrics_port: int = Field(
        default=service_port(9101),
        description="operator port on the same host: /metrics and the API docs; 0 leaves it off",
    )
    scoring_target: str = f"127.0.0.1:{service_port(50051)}"
    explanation_target: str = f"127.0.0.1:{service_port(50052)}"
    erasures_topic: str = MEMBER_ERASURES
    erasures_completed_topic: str = MEMBER_ERASURES_COMPLETED
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    erasure_status_group: str = Field(
        default="gateway-erasures",
        description="consumer group reading erasure completions into the status in Redis",
    )
    export_ttl_hours: int = Field(
        default=24, ge=1, description="how long the gateway keeps an export's parts (personal data)"
    )
    erasure_status_ttl_days: int = Field(
        default=90, ge=1, description="how long an erasure request's status can be read"
    )
    member_pseudonym_key: SecretStr = pseudonym_key_field()
    grpc_timeout_seconds: float = Field(default=2.0, gt=0, description="deadline of every call")
    # a batch of 1,000 is 1,000 decisions' work: on 2 shared cores it took 1.2-2.2 s, and every
    # one failed at the single call's 2 s while the services downstream worked off the last one
    grpc_batch_timeout_seconds: float = Field(
        default=10.0, gt=0, description="deadline of a ScoreBatch call (POST /v1/scores:batch)"
    )
    applications_topic: str = LOAN_APPLICATIONS
    appeals_topic: str = APPEALS
    transactions_topic: str = MOBILE_MONEY_TRANSACTIONS
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me-before-deploying")
    jwt_issuer: str = "alama"
    jwt_audience: str = Field(default="alama-api", description="the `aud` every token must name")
    jwt_max_lifetime_minutes: int = Field(
        default=1440, ge=1, description="tokens valid for longer (exp - iat) are refused"
    )
    jwt_previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="keys still accepted during a rotation (tokens are signed with jwt_secret"
        " only); drop them once the longest-lived token signed with them has expired",
    )
    api_keys: list[ApiKey] = Field(default_factory=_dev_api_keys)
    webhook_secret: SecretStr = SecretStr("dev-only-webhook-secret-change-me")
    webhook_tenant: str = Field(
        default=DEV_TENANT,
        pattern=TENANT_PATTERN,
        description="the tenant (SACCO) whose members webhook_secret's deliveries are about",
    )
    webhook_tenants: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="more tenants' own webhook secrets (tenant -> secret); a delivery names its"
        " tenant in X-Alama-Tenant",
    )
    webhook_tolerance_seconds: int = Field(default=300, description="oldest accepted delivery")
    max_webhook_transactions: int = Field(default=500, ge=1, le=MAX_WEBHOOK_TRANSACTIONS)
    pseudonym_key: SecretStr = SecretStr("dev-only-pseudonym-key-change-me")
    max_call_applications: int = Field(
        default=1000,
        ge=1,
        le=MAX_CALL_APPLICATIONS,
        description="most applications one POST /v1/scores:batch may carry",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="largest JSON API body; larger is a 413"
    )
    max_webhook_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest webhook delivery; larger is a 413"
    )
    body_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="longest wait for a request body to arrive; then 408"
    )
    rate_limit_default: str = Field(
        default="200/second", description="requests per tenant without an entry in rate_limits"
    )
    rate_limits: dict[str, str] = Field(
        default_factory=dict, description='tenant -> its own rate, e.g. {"sacco-a": "20/second"}'
    )
    webhook_rate_limit: str = Field(
        default="1000/second", description="webhook deliveries per client address"
    )
    max_in_flight: int = Field(
        default=128, ge=1, description="requests one process serves at once; beyond it 503"
    )
    retry_after_seconds: int = Field(
        default=1, ge=1, description="Retry-After of a 503 (in-flight cap, upstream down)"
    )
    kafka_publish_timeout_seconds: float = Field(
        default=2.0, gt=0, description="longest wait for the broker to acknowledge a publish"
    )
    redis_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        description="longest wait for one Redis call (replay, revocation, rate limit)",
    )
    model_inputs_seconds: float = Field(
        default=10.0, gt=0, description="how long the serving model's input list is reused"
    )
    readiness_timeout_seconds: float = 2.0
    shutdown_grace_seconds: float = 5.0

    @field_validator("rate_limit_default", "webhook_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse(value)  # ValueError names what is wrong
        return value

    @field_validator("webhook_tenants")
    @classmethod
    def _webhook_tenants(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for tenant in value:
            if not re.fullmatch(TENANT_PATTERN, tenant):
                raise ValueError(f"webhook tenant {tenant!r} must match {TENANT_PATTERN}")
        return value

    def unsafe_secrets(self) -> Iterator[tuple[str, str]]:
        yield from super().unsafe_secrets()
        if "webhook_tenant" not in self.model_fields_set:
            # deliveries filed under the development tenant would feed no real SACCO's scores
            yield (
                "ALAMA_GATEWAY_WEBHOOK_TENANT",
                "is not set: name the tenant (SACCO) whose members the webhook secret's"
                f" deliveries are about (only development mode defaults it to {DEV_TENANT})",
            )

    def webhook_secret_of(self, tenant: str) -> SecretStr | None:
        """The secret that signs `tenant`'s deliveries; None for a tenant without one."""
        if tenant == self.webhook_tenant:
            return self.webhook_secret
        return self.webhook_tenants.get(tenant)

    @field_validator("rate_limits")
    @classmethod
    def _tenant_rates(cls, value: dict[str, str]) -> dict[str, str]:
        for rate in value.values():
            parse(rate)
        return value
