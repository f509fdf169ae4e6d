"""Retrainer settings (environment prefix ``ALAMA_RETRAINER_``)."""

from __future__ import annotations

import sys

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.member_rights import pseudonym_key_field
from services.common.postgres import is_sql_identifier
from services.common.settings import ConsumerSettings, service_port
from services.common.topics import (
    DRIFT_ALERTS,
    LOAN_APPLICATIONS,
    LOAN_OUTCOMES,
    MEMBER_ERASURES,
    MEMBER_ERASURES_COMPLETED,
    MEMBER_EXPORT_PARTS,
    MEMBER_EXPORTS,
    MODEL_PERFORMANCE_ALERTS,
)


class RetrainerSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_RETRAINER_", extra="ignore")

    service_name: str = "retrainer"
    consumer_group: str = "retrainer"
    max_batch: int = Field(default=1000, ge=1)
    metrics_port: int = service_port(9108)
    db_schema: str = Field(default="retrainer", description="PostgreSQL schema of the retrainer")
    applications_topic: str = LOAN_APPLICATIONS
    outcomes_topic: str = LOAN_OUTCOMES
    drift_alerts_topic: str = DRIFT_ALERTS
    performance_alerts_topic: str = MODEL_PERFORMANCE_ALERTS
    erasures_topic: str = MEMBER_ERASURES
    erasures_completed_topic: str = MEMBER_ERASURES_COMPLETED
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    #: keys the erased-members set (tenant-scoped pseudonyms), so no raw id outlives an erasure
    member_pseudonym_key: SecretStr = pseudonym_key_field()
    publish_timeout_seconds: float = Field(
        default=5.0, gt=0, description="how long an erasure's or export's answer waits for the ack"
    )
    schedule_every_hours: float = Field(
        default=168.0, ge=0, description="retrain at least this often (0: only on alerts)"
    )
    cooldown_minutes: float = Field(
        default=60.0,
        ge=0,
        description="the least time between two runs: an alert storm trains one challenger",
    )
    min_new_outcomes: int = Field(
        default=200,
        ge=1,
        description="labelled live applications needed since the last run before training: an"
        " alert with nothing new to learn from waits for outcomes to mature",
    )
    check_every_seconds: float = Field(default=30.0, gt=0)
    profile: str = Field(default="quick", description="training profile of the challenger")
    book: str | None = Field(
        default=None, description="the champion's loan book folder (default: the synthetic one)"
    )
    bundle_root: str | None = Field(
        default=None, description="where challengers' bundles are written (training's default)"
    )
    work_dir: str = Field(default="artifacts/retrainer", description="each run's files")
    training_command: list[str] = Field(
        default_factory=lambda: [sys.executable, "-m", "training.retrain"],
        description="the job (JSON list); gets --live-rows, --trigger, --profile, --result",
    )
    run_timeout_minutes: float = Field(default=180.0, gt=0)

    @field_validator("db_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not is_sql_identifier(value):
            raise ValueError("db_schema must be a lower-case SQL identifier")
        return value
