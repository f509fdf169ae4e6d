"""Explanation settings (environment prefix ``ALAMA_EXPLANATION_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.member_rights import pseudonym_key_field
from services.common.model_registry import REGISTERED_MODEL
from services.common.settings import ConsumerSettings, service_port
from services.common.topics import (
    CREDIT_DECISIONS,
    CREDIT_EXPLANATIONS,
    MEMBER_ERASURES,
    MEMBER_ERASURES_COMPLETED,
    MEMBER_EXPORT_PARTS,
    MEMBER_EXPORTS,
    REVIEW_OUTCOMES,
)


class ExplanationSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_EXPLANATION_", extra="ignore")

    service_name: str = "explanation"
    metrics_port: int = service_port(9104)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = service_port(50052)
    bundle_root: str = Field(
        default="artifacts/bundles",
        description="folder of bundles named by version; a decision is explained by its own",
    )
    max_cached_bundles: int = Field(default=3, ge=1)
    model_registry: bool = Field(
        default=True,
        description="fetch a version the bundle root lacks from MLflow's registry"
        " (MLFLOW_TRACKING_URI, else the local store `make train` writes) into the root,"
        " which must then be writable",
    )
    registered_model: str = REGISTERED_MODEL
    consumer_group: str = "explanation"
    decisions_topic: str = CREDIT_DECISIONS
    explanations_topic: str = CREDIT_EXPLANATIONS
    review_outcomes_topic: str = REVIEW_OUTCOMES
    erasures_topic: str = MEMBER_ERASURES
    erasures_completed_topic: str = MEMBER_ERASURES_COMPLETED
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    #: keys the erased-members set (tenant-scoped pseudonyms), so no raw id outlives an erasure
    member_pseudonym_key: SecretStr = pseudonym_key_field()
    db_schema: str = Field(
        default="explanation", description="PostgreSQL schema of the stored decisions"
    )
    max_batch: int = Field(default=256, ge=1, description="decisions explained per batch")
    # off the synchronous path: batches of decisions, not one fetch and commit each
    consumer_fetch_min_bytes: int = Field(default=65536, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=150, ge=0, le=10_000)
    explain_threads: int = Field(default=1, ge=1, description="worker threads running SHAP")
    top_reasons: int = 4
