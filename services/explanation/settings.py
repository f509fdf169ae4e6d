"""Explanation settings (environment prefix ``ALAMA_EXPLANATION_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ExplanationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_EXPLANATION_", extra="ignore")

    service_name: str = "explanation"
    metrics_port: int = 9104
    grpc_port: int = 50052
    bundle_dir: str = "artifacts/bundles/current"
    top_reasons: int = 4
