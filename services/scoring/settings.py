"""Scoring settings (environment prefix ``ALAMA_SCORING_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ConsumerSettings, service_port
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS


class ScoringSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_SCORING_", extra="ignore")

    service_name: str = "scoring"
    metrics_port: int = service_port(9103)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = service_port(50051)
    bundle_dir: str = "artifacts/bundles/current"
    feature_repo: str = "feature_repo"
    max_batch: int = Field(default=256, ge=1, description="applications scored per Kafka batch")
    # the Kafka path only (gRPC calls never wait): applications in batches
    consumer_fetch_min_bytes: int = Field(default=16384, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=20, ge=0, le=10_000)
    model_threads: int = 2
    applications_topic: str = LOAN_APPLICATIONS
    decisions_topic: str = CREDIT_DECISIONS
    consumer_group: str = "scoring"
    max_call_applications: int = Field(
        default=1000, ge=1, description="most applications one ScoreBatch call may carry"
    )
    max_waiting_calls: int = Field(
        default=1024, ge=1, description="synchronous calls allowed to queue; more are shed"
    )
    max_reasons: int = 4
    bundle_check_seconds: float = 5.0
    publish_timeout_seconds: float = Field(
        default=1.5,
        gt=0,
        description="how long a synchronous call waits for the broker to take its decision"
        " (keep it under the gateway's gRPC deadline)",
    )
    ledger_namespace: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="keeps one deployment's (or one test's) application ids apart from another's",
    )
    ledger_days: int = Field(
        default=400,
        ge=1,
        description="how long an application id keeps its decision: a retry with the same"
        " content gets it again, other content is a conflict",
    )
