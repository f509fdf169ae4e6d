"""The gateway's domain exceptions; app.py maps each class to an HTTP status in one table."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.errors import AlamaError


class GatewayError(AlamaError):
    """Base of the errors a request can end in; `detail` is what the caller reads."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotAuthenticated(GatewayError):
    """No credential, or one that does not verify (bad JWT, unknown API key)."""


class InsufficientScope(GatewayError):
    """A valid credential that lacks a scope the operation needs."""

    def __init__(self, detail: str, required: Sequence[str]) -> None:
        super().__init__(detail)
        self.required = tuple(required)


class BadSignature(GatewayError):
    """A webhook delivery without a valid HMAC signature."""


class StaleDelivery(GatewayError):
    """A signed webhook delivery whose timestamp is outside the tolerance window."""


class ReplayedDelivery(GatewayError):
    """A signed webhook delivery that was already accepted once."""


class NotFound(GatewayError):
    """The member, decision or explanation does not exist (or not yet)."""


class Conflict(GatewayError):
    """The application id was already decided with other content."""


class InvalidRequest(GatewayError):
    """Input that passed the schema but is still unacceptable; `loc` names the field."""

    def __init__(self, detail: str, loc: Sequence[str | int] = ("body",)) -> None:
        super().__init__(detail)
        self.loc = tuple(loc)


class RateLimited(GatewayError):
    """The caller's tenant (or webhook address) spent its rate; `retry_after` in seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UpstreamUnavailable(GatewayError):
    """A dependency (scoring, explanation, Kafka, Redis) did not answer in time."""


class UpstreamFailed(GatewayError):
    """A dependency answered with an error the caller cannot fix."""
