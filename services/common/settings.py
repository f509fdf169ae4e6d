"""Settings every service shares, read from the environment.

Infrastructure addresses live in one class (`InfraSettings`, prefix ``ALAMA_``) so that a
single ``ALAMA_KAFKA_BOOTSTRAP`` reaches every service; each service's own class (prefix
``ALAMA_<NAME>_``) extends `ServiceSettings` and nests the infrastructure block.
The defaults are the project ports that ``make infra-up`` starts on a developer's machine.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
REDIS_PORT = 16379
POSTGRES_PORT = 15432


class InfraSettings(BaseSettings):
    """Where Kafka, Redis and PostgreSQL are."""

    model_config = SettingsConfigDict(env_prefix="ALAMA_", extra="ignore")

    kafka_bootstrap: str = f"127.0.0.1:{KAFKA_PORT}"
    redis_url: str = f"redis://127.0.0.1:{REDIS_PORT}/0"
    postgres_dsn: str = f"postgresql://alama:alama@127.0.0.1:{POSTGRES_PORT}/alama"
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/gRPC collector address; spans are not exported when unset"
    )
    environment: str = "local"
    trace_file: str | None = Field(
        default=None,
        description="append every finished span to this file as JSON lines (local runs, tests)",
    )


class ServiceSettings(BaseSettings):
    """Base of every service's settings class: name, logging, metrics and infrastructure."""

    model_config = SettingsConfigDict(env_prefix="ALAMA_SERVICE_", extra="ignore")

    service_name: str = "alama"
    log_level: str = "INFO"
    metrics_port: int = Field(default=0, description="Prometheus scrape port; 0 disables it")
    infra: InfraSettings = Field(default_factory=InfraSettings)
