"""Feature-store ingestion settings (environment prefix ``ALAMA_FEATURE_STORE_``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.feast_config import FEATURE_REPO, REPO_ROOT
from services.common.member_rights import pseudonym_key_field
from services.common.settings import service_port
from services.common.topics import (
    MEMBER_ERASURES_COMPLETED,
    MEMBER_ERASURES_VOUCHED,
    MEMBER_EXPORT_PARTS,
    MEMBER_EXPORTS,
    MOBILE_MONEY_TRANSACTIONS,
    REPAYMENTS,
)
from services.common.worker_settings import StreamWorkerSettings


class PushTarget(StrEnum):
    """Where recomputed rows go; mirrors Feast's PushMode without importing Feast here."""

    ONLINE = "online"
    ONLINE_AND_OFFLINE = "online_and_offline"


class FeatureStoreSettings(StreamWorkerSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_FEATURE_STORE_", extra="ignore")

    service_name: str = "feature_store"
    metrics_port: int = service_port(9102)
    consumer_group: str = "feature_store"
    # freshness first: a member's new transaction is fetched as soon as it lands (what Faust
    # itself asks for), and a busy stream fills each fetch anyway; an idle one asks every 1.5 s
    consumer_fetch_min_bytes: int = Field(default=1, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=1500, ge=0, le=10_000)
    mobile_money_topic: str = MOBILE_MONEY_TRANSACTIONS
    repayments_topic: str = REPAYMENTS
    erasures_topic: str = MEMBER_ERASURES_VOUCHED
    erasures_completed_topic: str = MEMBER_ERASURES_COMPLETED
    exports_topic: str = MEMBER_EXPORTS
    export_parts_topic: str = MEMBER_EXPORT_PARTS
    topic_partitions: int = Field(
        default=6, ge=1, description="partitions of the source topics; the state tables match"
    )
    max_batch: int = Field(default=500, ge=1, description="most events per stream.take batch")
    batch_max_wait_ms: int = Field(
        default=200, ge=1, description="longest wait for a batch to fill before processing it"
    )
    feature_repo: str = Field(
        default=str(FEATURE_REPO.relative_to(REPO_ROOT)),
        description="Feast repo folder, relative to the project root unless absolute",
    )
    mobile_money_push_source: str = "mobile_money_push"
    repayment_push_source: str = "repayment_push"
    push_target: PushTarget = Field(
        default=PushTarget.ONLINE_AND_OFFLINE,
        description=(
            "online_and_offline also writes every pushed row to the PostgreSQL offline store"
            " (services.feature_store.offline), so training reads streamed rows point in time;"
            " online pushes to Redis only"
        ),
    )
    offline_write_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "bound on one offline write; a write that fails or takes longer is retried by the"
            " retry timer, and batches skip offline writes until a retry succeeds"
        ),
    )
    retry_pending_every_s: float = Field(
        default=10.0, gt=0, description="how often members whose push failed are pushed again"
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, gt=0, description="time a batch in hand gets to finish when stopping"
    )
    member_pseudonym_key: SecretStr = pseudonym_key_field()

    @property
    def feature_repo_path(self) -> Path:
        path = Path(self.feature_repo)
        return path if path.is_absolute() else REPO_ROOT / path
