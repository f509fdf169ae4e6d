"""Scoring settings (environment prefix ``ALAMA_SCORING_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.model_registry import REGISTERED_MODEL
from services.common.settings import ConsumerSettings, service_port
from services.common.topics import (
    CREDIT_DECISIONS,
    LOAN_APPLICATIONS,
    MODEL_REGISTRY,
    SHADOW_DECISIONS,
)


class ScoringSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_SCORING_", extra="ignore")

    service_name: str = "scoring"
    metrics_port: int = service_port(9103)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = service_port(50051)
    model_source: Literal["registry", "link"] = Field(
        default="registry",
        description="registry: serve MLflow's `champion` alias (MLFLOW_TRACKING_URI, else the"
        " local store `make train` writes) and shadow its `challenger`; link: serve whatever"
        " `bundle_dir` points at (a lender's own bundle, tests), no shadow",
    )
    bundle_dir: str = Field(
        default="artifacts/bundles/current", description="the served bundle in link mode"
    )
    bundle_root: str = Field(
        default="artifacts/bundles",
        description="registry mode: where registered bundles are found, or downloaded to from"
        " MLflow when missing (a relative root is from the working directory)",
    )
    registered_model: str = REGISTERED_MODEL
    registry_topic: str = Field(
        default=MODEL_REGISTRY,
        description="ModelRegistryChanged events: a moved alias is followed at once",
    )
    shadow_topic: str = Field(
        default=SHADOW_DECISIONS, description="where the challenger's decisions go"
    )
    shadow_max_pending: int = Field(
        default=64,
        ge=1,
        description="scored batches waiting for the challenger; more are dropped (counted),"
        " never waited for",
    )
    feature_repo: str = "feature_repo"
    max_batch: int = Field(default=256, ge=1, description="applications scored per Kafka batch")
    # the Kafka path only (gRPC calls never wait): applications in batches
    consumer_fetch_min_bytes: int = Field(default=16384, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=0, le=10_000)
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
    bundle_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often the link or the registry's aliases are checked (registry mode"
        " also reacts at once to `registry_topic`)",
    )
    publish_linger_ms: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="how long the decisions producer waits to fill a batch; every synchronous"
        " caller waits for it (5 ms cost a lone request 4.6 of its 21 ms here, and concurrent"
        " calls still share a request: the next batch forms while one is in flight)",
    )
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
        description="how long an application id keeps its decision (its outcome, ~0.8 KB): a"
        " retry with the same content gets it again, other content is a conflict",
    )
    ledger_retry_minutes: float = Field(
        default=0,
        ge=0,
        description="how long scoring keeps a decision whole (~6 KB in Redis) once the broker has"
        " it, so that a retry asking for the FULL view gets it whole; otherwise (0: deleted at"
        " once) a retry gets its outcome (~0.8 KB), which is all the gateway asks for. A decision"
        " the broker never acknowledged stays whole for ledger_days, so a retry however late"
        " publishes it. Expired copies leave Redis only as its sampling finds them",
    )
