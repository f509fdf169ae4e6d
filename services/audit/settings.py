"""Audit settings (environment prefix ``ALAMA_AUDIT_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_AUDIT_", extra="ignore")

    service_name: str = "audit"
    metrics_port: int = 9105
    retention_days: int = 7 * 365
    db_schema: str = Field(
        default="audit", description="PostgreSQL schema of the audit tables (tests use a fresh one)"
    )
    group_id: str = "audit"
