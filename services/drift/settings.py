"""Drift settings (environment prefix ``ALAMA_DRIFT_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class DriftSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_DRIFT_", extra="ignore")

    service_name: str = "drift"
    metrics_port: int = 9106
    bundle_dir: str = "artifacts/bundles/current"
    window_size: int = 1000
    psi_alert_threshold: float = 0.25
