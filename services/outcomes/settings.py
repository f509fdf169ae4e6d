"""Outcomes settings (environment prefix ``ALAMA_OUTCOMES_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.member_rights import pseudonym_key_field
from services.common.postgres import is_sql_identifier
from services.common.settings import ConsumerSettings, service_port
from services.common.topics import (
    CREDIT_DECISIONS,
    LOAN_APPLICATIONS,
    LOAN_OUTCOMES,
    LOANS,
    MEMBER_ERASURES,
    MEMBER_ERASURES_COMPLETED,
    MEMBER_EXPORT_PARTS,
    MEMBER_EXPORTS,
    MODEL_PERFORMANCE_ALERTS,
    REPAYMENTS,
    REVIEW_OUTCOMES,
    SHADOW_DECISIONS,
)


class OutcomesSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_OUTCOMES_", extra="ignore")

    service_name: str = "outcomes"
    consumer_group: str = "outcomes"
    max_batch: int = Field(default=1000, ge=1)
    # off the synchronous path: a fetch waits for a batch (at most 200 ms), so each decision does
    # not cost its own fetch, commit and transaction (with the defaults it did, at 3.5 CPU ms each)
    consumer_fetch_min_bytes: int = Field(default=65536, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=200, ge=0, le=10_000)
    metrics_port: int = Field(
        default=service_port(9107),
        description="/metrics, and the shadow comparison (/shadow, /shadow.json) and the"
        " promotion gate's input (/shadow/pairs.json) on the same operator port; 0 turns it off",
    )
    db_schema: str = Field(default="outcomes", description="PostgreSQL schema of the outcomes")
    decisions_topic: str = CREDIT_DECISIONS
    review_outcomes_topic: str = REVIEW_OUTCOMES
    loans_topic: str = LOANS
    repayments_topic: str = REPAYMENTS
    outcomes_topic: str = LOAN_OUTCOMES
    shadow_topic: str = SHADOW_DECISIONS
    applications_topic: str = Field(
        default=LOAN_APPLICATIONS,
        description="read only for each application's gender and age band (fairness by group)",
    )
    performance_alerts_topic: str = MODEL_PERFORMANCE_ALERTS
    # members' rights: its part of an export or an erasure (services/outcomes/member_data.py)
    erasures_topic: str = MEMBER_ERASURES
    erasures_completed_topic: str = MEMBER_ERASURES_COMPLETED
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    #: files each row under its member's tenant-scoped pseudonym (no raw id is stored) and keys
    #: the erased-members set
    member_pseudonym_key: SecretStr = pseudonym_key_field()
    alert_min_loans: int = Field(
        default=200,
        ge=1,
        description="matured loans a bundle's month needs before it can raise a performance"
        " alert (fewer and the interval is too wide to tell a weaker model from chance)",
    )
    alert_auc_drop: float = Field(
        default=0.05, gt=0, lt=1, description="alert when live AUC < (1 - this) x held-out AUC"
    )
    alert_ece_max: float = Field(default=0.02, gt=0, description="alert when live ECE > this")
    bundle_root: str = Field(
        default="artifacts/bundles",
        description="where each bundle's folder holds its metrics.json (the AUC and ECE it was"
        " trained to, the reference the live ones are compared with)",
    )
    performance_every_seconds: float = Field(
        default=60.0, gt=0, description="how often live performance is recomputed"
    )
    publish_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("db_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not is_sql_identifier(value):
            raise ValueError("db_schema must be a lower-case SQL identifier")
        return value
