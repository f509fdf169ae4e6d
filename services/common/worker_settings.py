"""Settings every Faust worker shares (feature_store, drift): besides every consumer's
(`ConsumerSettings`: the consumer group, which is the Faust app id), lag sampling, poison-record
retries and the liveness threshold of the shared consumer layer."""

from __future__ import annotations

from pydantic import Field

from services.common.retries import RetryPolicy
from services.common.settings import ConsumerSettings


class StreamWorkerSettings(ConsumerSettings):
    lag_every_s: float = Field(default=5.0, gt=0, description="consumer lag sampling period")
    publish_timeout_s: float = Field(default=30.0, gt=0, description="bound on one send")
    handler_attempts: int = Field(
        default=3, ge=1, description="attempts at a failing record before it is dead-lettered"
    )
    liveness_stall_s: float = Field(
        default=120.0,
        gt=0,
        description="/livez fails when an agent with work has finished nothing for this long",
    )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.handler_attempts)
