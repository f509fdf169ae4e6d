"""Console settings (environment prefix ``ALAMA_CONSOLE_``)."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.member_rights import pseudonym_key_field
from services.common.members import TENANT_PATTERN
from services.common.settings import ConsumerSettings, service_port
from services.common.topics import (
    APPEALS,
    CREDIT_DECISIONS,
    LOAN_APPLICATIONS,
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
    consumer_group: str = "console"
    max_batch: int = Field(default=256, ge=1)
    decisions_topic: str = CREDIT_DECISIONS
    applications_topic: str = LOAN_APPLICATIONS
    review_outcomes_topic: str = REVIEW_OUTCOMES
    appeals_topic: str = APPEALS
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

    @field_validator("db_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
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

    def four_eyes_amount(self, tenant: str) -> float:
        return self.four_eyes_amounts.get(tenant, self.four_eyes_amount_kes)
