"""Simulator settings (environment prefix ``ALAMA_SIMULATOR_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common import topics
from services.common.members import DEV_TENANT, TENANT_PATTERN
from services.common.settings import ServiceSettings, service_port


class SimulatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_SIMULATOR_", extra="ignore")

    service_name: str = "simulator"
    gateway_url: str = f"http://127.0.0.1:{service_port(8080)}"
    api_key: SecretStr = SecretStr("dev-partner-key")
    tenant: str = Field(
        default=DEV_TENANT,
        pattern=TENANT_PATTERN,
        description="the SACCO core banking publishes for (the API key's tenant, so its"
        " decisions can be read back through the gateway)",
    )
    webhook_secret: SecretStr = SecretStr("dev-only-webhook-secret-change-me")
    profile: str = Field(
        default="tiny",
        description="training profile whose synthetic loan book is played when `book` is unset",
    )
    book: str | None = Field(
        default=None,
        description="an imported loan book to play instead: its name under artifacts/loanbooks/"
        " or its folder",
    )
    applications_topic: str = topics.LOAN_APPLICATIONS
    repayments_topic: str = topics.REPAYMENTS
    loans_topic: str = Field(default=topics.LOANS, description="where disbursed loans go")
    disburse_loans: bool = Field(
        default=False,
        description="after the applications, disburse a loan for each one Alama approved and"
        " record its instalments (a run's --disburse / --no-disburse overrides it)",
    )
    decision_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description="how long disbursement waits for decisions (and reviews) before it gives up"
        " on the applications still undecided",
    )
    decision_poll_seconds: float = Field(
        default=1.0, gt=0, description="between two rounds of asking the gateway for decisions"
    )
    mobile_money_topic: str = Field(
        default=topics.MOBILE_MONEY_TRANSACTIONS,
        description="where the gateway publishes webhooks; read only to wait for the lag",
    )
    feature_group: str = Field(
        default="feature_store", description="consumer group whose lag the features wait tracks"
    )
    http_timeout_seconds: float = 30.0
    webhook_attempts: int = Field(
        default=4,
        ge=1,
        description="sends of a webhook delivery the gateway refuses for back-pressure (429,"
        " 503), each after its Retry-After, as a mobile-money provider retries",
    )
    concurrency: int = Field(default=64, ge=1, description="applications in flight at most")
    webhook_lanes: int = Field(
        default=4, ge=1, description="webhook deliveries in flight; a member stays in one lane"
    )
