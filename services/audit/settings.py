"""Audit settings (environment prefix ``ALAMA_AUDIT_``).

The service reaches PostgreSQL at the shared address (``ALAMA_POSTGRES_DSN``) but never with the
shared login: it runs as a writer role that may only INSERT and SELECT, and schema changes run as
a separate owner role. Rows and anchors are sealed with a MAC key that is not in the database.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ConsumerSettings, service_port
from services.common.topics import AUDIT_ANCHORS, MEMBER_EXPORT_PARTS, MEMBER_EXPORTS

AUDIT_OWNER_ROLE = "alama_audit_owner"
AUDIT_WRITER_ROLE = "alama_audit_writer"
DEV_OWNER_PASSWORD = "dev-only-audit-owner-password"
DEV_WRITER_PASSWORD = "dev-only-audit-writer-password"
#: Seven years: what Kenyan financial record-keeping rules ask lenders to keep.
SEVEN_YEARS_DAYS = 7 * 365


def _default_anchor_dir() -> Path:
    return Path(os.environ.get("ALAMA_RUN_DIR", ".run")) / "audit-anchors"


def dsn_as(dsn: str, user: str, password: str) -> str:
    """The same server and database as `dsn`, logged in as another role."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class AuditSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_AUDIT_", extra="ignore")

    service_name: str = "audit"
    metrics_port: int = service_port(9105)
    db_schema: str = Field(
        default="audit", description="PostgreSQL schema of the audit tables (tests use a fresh one)"
    )
    consumer_group: str = "audit"
    # the read contract (alama.audit.v1.AuditService: an application's trail, verified)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = service_port(50053)
    trail_max_rows: int = Field(
        default=50_000,
        ge=1,
        description="chain rows one trail request verifies at most beyond its checkpoint; a"
        " longer way says it verified only the application's records and their neighbours",
    )
    trail_reverify_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="a full verification this old is started again from the chain's start",
    )
    max_batch: int = Field(default=500, ge=1, description="events appended in one transaction")
    # off the synchronous path: batches of events per transaction
    consumer_fetch_min_bytes: int = Field(default=65536, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=150, ge=0, le=10_000)

    writer_user: str = Field(
        default=AUDIT_WRITER_ROLE, description="the role the service appends as: INSERT, SELECT"
    )
    writer_password: SecretStr = SecretStr(DEV_WRITER_PASSWORD)
    owner_user: str = Field(
        default=AUDIT_OWNER_ROLE, description="the role that owns the schema and runs migrations"
    )
    owner_password: SecretStr = SecretStr(DEV_OWNER_PASSWORD)
    migrate_on_start: bool = Field(
        default=True,
        description="`run` migrates with the owner login first; off where a separate step does",
    )
    readers: list[str] = Field(
        default_factory=lambda: ["alama"],
        description="roles granted SELECT on the events table only (demo, bench, dashboards)",
    )

    mac_key: SecretStr = Field(
        default=SecretStr("dev-only-audit-mac-key-change-me"),
        description="HMAC-SHA256 key sealing every row and anchor; kept outside the database",
    )

    anchor_topic: str = AUDIT_ANCHORS
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    anchor_dir: Path = Field(
        default_factory=_default_anchor_dir,
        description="folder of the anchor files, one `<schema>.jsonl` per chain",
    )
    anchor_interval_seconds: float = Field(default=30.0, gt=0)

    retention_days: int = SEVEN_YEARS_DAYS
    retention_min_days: int = Field(
        default=SEVEN_YEARS_DAYS,
        ge=1,
        description="retention refuses to prune anything younger than this",
    )

    @model_validator(mode="after")
    def _retention_not_below_minimum(self) -> AuditSettings:
        if self.retention_days < self.retention_min_days:
            raise ValueError(
                f"retention_days ({self.retention_days}) is below retention_min_days"
                f" ({self.retention_min_days})"
            )
        return self

    @property
    def writer_dsn(self) -> str:
        return dsn_as(
            self.infra.postgres_dsn, self.writer_user, self.writer_password.get_secret_value()
        )

    @property
    def owner_dsn(self) -> str:
        return dsn_as(
            self.infra.postgres_dsn, self.owner_user, self.owner_password.get_secret_value()
        )

    @property
    def mac_key_bytes(self) -> bytes:
        return self.mac_key.get_secret_value().encode()

    @property
    def retention_min_age(self) -> timedelta:
        return timedelta(days=self.retention_min_days)

    @property
    def anchor_file(self) -> Path:
        return self.anchor_dir / f"{self.db_schema}.jsonl"
