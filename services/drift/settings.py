"""Drift settings (environment prefix ``ALAMA_DRIFT_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import service_port
from services.common.topics import CREDIT_DECISIONS, DRIFT_ALERTS
from services.common.worker_settings import StreamWorkerSettings


class DriftSettings(StreamWorkerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_DRIFT_", extra="ignore")

    service_name: str = "drift"
    metrics_port: int = service_port(9106)
    bundle_dir: str = "artifacts/bundles/current"
    reference_source: Literal["link", "registry"] = Field(
        default="link",
        description="link: the reference of the bundle `bundle_dir` points at (the training CLI"
        " moves `current` with the champion); registry: the champion alias's bundle in MLflow"
        " (MLFLOW_TRACKING_URI), fetched into `bundle_root`",
    )
    bundle_root: str = "artifacts/bundles"
    reference_check_seconds: float = Field(
        default=30.0, gt=0, description="how often the champion is looked up again"
    )
    window_size: int = Field(default=1000, ge=1)
    psi_alert_threshold: float = 0.25
    evaluate_every: int = Field(
        default=100, ge=1, description="decisions between PSI checks once the window is full"
    )
    consumer_group: str = "alama-drift"
    # off the synchronous path, and its windows hold a thousand decisions: a fetch waits for
    # 64 KiB (about a dozen decisions) or half a second, never one record at a time
    consumer_fetch_min_bytes: int = Field(default=65536, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=500, ge=0, le=10_000)
    decisions_topic: str = CREDIT_DECISIONS
    alerts_topic: str = DRIFT_ALERTS
