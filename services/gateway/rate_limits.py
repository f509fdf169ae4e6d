"""Per-tenant rate limits in Redis, with the `limits` library's moving window.

Every authenticated request spends one request of its tenant's rate (its entry in the
``rate_limits`` setting, else ``rate_limit_default``), keyed by the principal's tenant, so one
tenant's burst never limits another's. The webhook is signed, not authenticated as a tenant: a
delivery spends one of its client address's ``webhook_rate_limit`` before its signature is even
checked. Over the limit is a 429 with ``Retry-After`` (seconds until the window frees a request);
every limited response carries ``RateLimit-Limit``, ``-Remaining``, ``-Reset`` and ``-Policy``
(the IETF RateLimit header fields draft). The counters live in Redis, so every gateway replica
spends from the same budget.

The moving window is exact (no doubled burst at a window edge); it keeps one timestamp per
request in the window, which is small for per-second and per-minute rates.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import RateLimited
from services.gateway.metrics import RATE_LIMITER_ERRORS, SHED_REQUESTS
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

KEY_PREFIX = "alama:gateway:ratelimit"
STATE_KEY = "rate_limit"


@dataclass(frozen=True)
class RateLimitState:
    """Where a key stands after a request spent (or was refused) one of its rate."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window frees a request
    window_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


class RateLimiter:
    """The tenants' and the webhook's rates over one `limits` storage.

    If Redis is down or slow, a request is let through (fail open), logged and counted in
    ``alama_gateway_rate_limiter_errors_total``. Rate limits share capacity fairly between
    tenants; they are not what keeps the gateway alive: the in-flight cap (per process, no
    Redis), the body limits and scoring's bounded queues still shed overload while Redis is
    out. Failing closed would turn a Redis outage into an outage of synchronous scoring, which
    does not otherwise need Redis. Each check waits at most ``redis_timeout_seconds``, so a
    slow Redis cannot stall requests either.

    The warning is logged at most once per ``WARN_EVERY_SECONDS``, with how many checks failed
    since the last one: at 100 requests/s on a saturated machine every check timed out, and one
    log line per request (4,443 in one benchmark) added load to a gateway already overloaded.
    The counter still counts every one.
    """

    WARN_EVERY_SECONDS = 10.0

    def __init__(self, storage: Storage, settings: GatewaySettings) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.default = parse(settings.rate_limit_default)
        self.tenants = {tenant: parse(rate) for tenant, rate in settings.rate_limits.items()}
        self.webhook = parse(settings.webhook_rate_limit)
        self.timeout = settings.redis_timeout_seconds
        self.clock: Callable[[], float] = time.monotonic
        self._warned_at: float | None = None
        self._unwarned = 0

    @classmethod
    def on_redis(cls, redis: Redis, settings: GatewaySettings) -> RateLimiter:
        """Counters in the gateway's Redis, over the same connection pool."""
        storage = RedisStorage(
            f"async+{settings.infra.redis_url}",
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        return cls(storage, settings)

    @classmethod
    def in_memory(cls, settings: GatewaySettings) -> RateLimiter:
        """Counters in this process only (tests, a single development gateway)."""
        return cls(MemoryStorage(), settings)

    def tenant_rate(self, tenant: str) -> RateLimitItem:
        return self.tenants.get(tenant, self.default)

    async def spend_tenant(self, tenant: str) -> RateLimitState | None:
        return await self._spend(self.tenant_rate(tenant), "tenant", tenant)

    async def spend_address(self, address: str) -> RateLimitState | None:
        return await self._spend(self.webhook, "webhook", address)

    async def _spend(self, rate: RateLimitItem, *key: str) -> RateLimitState | None:
        """One request of `rate` for `key`; None when the storage could not answer in time."""
        try:
            async with asyncio.timeout(self.timeout):
                allowed = await self.strategy.hit(rate, *key)
                stats = await self.strategy.get_window_stats(rate, *key)
        except (StorageError, RedisError, OSError, TimeoutError) as exc:
            RATE_LIMITER_ERRORS.inc()
            self._unwarned += 1
            now = self.clock()
            if self._warned_at is None or now - self._warned_at >= self.WARN_EVERY_SECONDS:
                log.warning(
                    "rate limit not checked: the limiter's storage is unavailable; letting the"
                    " request through",
                    extra={"scope": key[0], "error": repr(exc), "failed_checks": self._unwarned},
                )
                self._warned_at, self._unwarned = now, 0
            return None
        return RateLimitState(
            allowed=allowed,
            limit=rate.amount,
            remaining=stats.remaining,
            reset_seconds=max(0, math.ceil(stats.reset_time - time.time())),
            window_seconds=rate.get_expiry(),
        )


def admit(request: Request, state: RateLimitState | None) -> None:
    """Record where the caller stands (for the headers); RateLimited when over the rate."""
    if state is None:
        return
    request.state.rate_limit = state
    if not state.allowed:
        SHED_REQUESTS.labels("rate_limited").inc()
        raise RateLimited(
            f"rate limit of {state.limit} requests per {state.window_seconds}s exceeded;"
            " retry later",
            retry_after=max(1, state.reset_seconds),
        )


class RateLimitHeaders:
    """Adds the RateLimit-* headers to every response of a request that spent from a rate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {}).get(STATE_KEY)
                if isinstance(state, RateLimitState):
                    headers = list(message.get("headers", []))
                    headers += [
                        (k.lower().encode(), v.encode()) for k, v in state.headers().items()
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
