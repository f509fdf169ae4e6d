"""Drift settings (environment prefix ``ALAMA_DRIFT_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.retries import RetryPolicy
from services.common.settings import ServiceSettings, service_port
from services.common.topics import CREDIT_DECISIONS, DRIFT_ALERTS


class DriftSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_DRIFT_", extra="ignore")

    service_name: str = "drift"
    metrics_port: int = service_port(9106)
    bundle_dir: str = "artifacts/bundles/current"
    window_size: int = Field(default=1000, ge=1)
    psi_alert_threshold: float = 0.25
    evaluate_every: int = Field(
        default=100, ge=1, description="decisions between PSI checks once the window is full"
    )
    app_id: str = Field(default="alama-drift", description="Faust app id (the consumer group)")
    publish_timeout_s: float = Field(default=30.0, gt=0, description="bound on one alert send")
    decisions_topic: str = CREDIT_DECISIONS
    alerts_topic: str = DRIFT_ALERTS
    lag_every_s: float = Field(default=5.0, gt=0, description="consumer lag sampling period")
    handler_attempts: int = Field(
        default=3, ge=1, description="attempts at a failing record before it is dead-lettered"
    )
    liveness_stall_s: float = Field(
        default=120.0,
        gt=0,
        description="/livez fails when the agent with work has finished nothing for this long",
    )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.handler_attempts)
