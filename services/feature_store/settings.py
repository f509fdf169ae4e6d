"""Feature-store ingestion settings (environment prefix ``ALAMA_FEATURE_STORE_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class FeatureStoreSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_FEATURE_STORE_", extra="ignore")

    service_name: str = "feature_store"
    metrics_port: int = 9102
    feature_repo: str = "feature_repo"
    push_source: str = "member_activity_push"
