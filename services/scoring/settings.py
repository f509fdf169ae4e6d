"""Scoring settings (environment prefix ``ALAMA_SCORING_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS


class ScoringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_SCORING_", extra="ignore")

    service_name: str = "scoring"
    metrics_port: int = 9103
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    bundle_dir: str = "artifacts/bundles/current"
    feature_repo: str = "feature_repo"
    micro_batch_size: int = 256
    model_threads: int = 2
    applications_topic: str = LOAN_APPLICATIONS
    decisions_topic: str = CREDIT_DECISIONS
    consumer_group: str = "scoring"
    max_batch_applications: int = 1000
    max_reasons: int = 4
    bundle_check_seconds: float = 5.0
    shutdown_grace_seconds: float = 5.0
