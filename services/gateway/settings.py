"""Gateway settings (environment prefix ``ALAMA_GATEWAY_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_port: int = 0  # /metrics is served by the app itself
    scoring_target: str = "127.0.0.1:50051"
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me")
    jwt_issuer: str = "alama"
    webhook_secret: SecretStr = SecretStr("dev-only-webhook-secret-change-me")
    webhook_tolerance_seconds: int = Field(default=300, description="oldest accepted delivery")
    pseudonym_key: SecretStr = SecretStr("dev-only-pseudonym-key-change-me")
    max_batch: int = 1000
