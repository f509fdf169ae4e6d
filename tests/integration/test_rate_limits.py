"""The gateway's per-tenant rate limits on the real Redis: the `limits` moving window through the
gateway's own connection pool, shared by every replica, and failing open when Redis is gone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from services.common.redis_store import create_redis
from services.common.settings import InfraSettings
from services.gateway.app import create_app
from services.gateway.clients import Backends
from services.gateway.rate_limits import KEY_PREFIX, RateLimiter
from services.gateway.security import issue_token
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.fakes import (
    FakeEvents,
    FakeExplanations,
    FakeReplayStore,
    FakeRevocations,
    FakeScoring,
)


def gateway_settings(infra: InfraSettings, **overrides: object) -> GatewaySettings:
    return GatewaySettings(
        infra=infra,
        jwt_secret=SecretStr("integration-jwt-secret-of-at-least-32-bytes"),
        rate_limit_default="3/hour",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def redis(infra: InfraSettings) -> AsyncIterator[Redis]:
    client = create_redis(infra)
    try:
        yield client
    finally:
        await client.aclose()


def tenant() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"  # fresh counters each run


async def test_replicas_spend_one_budget_per_tenant_in_redis(
    infra: InfraSettings, redis: Redis
) -> None:
    settings = gateway_settings(infra)
    replica_a = RateLimiter.on_redis(redis, settings)
    other_pool = create_redis(infra)  # a second gateway process, its own connections
    try:
        replica_b = RateLimiter.on_redis(other_pool, settings)
        sacco, neighbour = tenant(), tenant()
        spent = [
            await replica_a.spend_tenant(sacco),
            await replica_b.spend_tenant(sacco),
            await replica_a.spend_tenant(sacco),
        ]
        assert all(s is not None and s.allowed for s in spent)
        assert [s.remaining for s in spent if s is not None] == [2, 1, 0]
        refused = await replica_b.spend_tenant(sacco)
        assert refused is not None and not refused.allowed
        assert 1 <= refused.reset_seconds <= 3600
        other = await replica_b.spend_tenant(neighbour)
        assert other is not None and other.allowed and other.remaining == 2
    finally:
        await other_pool.aclose()
    keys = [k async for k in redis.scan_iter(match=f"{KEY_PREFIX}*{sacco}*")]
    assert keys, "the counters live under the gateway's prefix"
    ttls = [await redis.ttl(k) for k in keys]
    assert all(0 < ttl <= 3600 for ttl in ttls)  # they expire with the window


async def test_the_gateway_answers_429_from_redis_counters(
    infra: InfraSettings, redis: Redis
) -> None:
    settings = gateway_settings(infra)
    app = create_app(
        settings,
        backends=Backends(
            scoring=FakeScoring(),
            explanations=FakeExplanations(),
            events=FakeEvents(),
            replay=FakeReplayStore(),
            revocations=FakeRevocations(),
            limiter=RateLimiter.on_redis(redis, settings),
        ),
    )
    token = issue_token(settings, "officer-1", ["decisions:read"], tenant=tenant())
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answers = [await client.get("/v1/decisions/d-none", headers=headers) for _ in range(4)]
    assert [r.status_code for r in answers] == [404, 404, 404, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert int(answers[3].headers["Retry-After"]) >= 1


async def test_without_redis_the_limiter_fails_open_within_its_deadline(
    infra: InfraSettings,
) -> None:
    gone = infra.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})  # nothing listens
    settings = gateway_settings(gone, redis_timeout_seconds=0.5)
    client = create_redis(gone)
    try:
        limiter = RateLimiter.on_redis(client, settings)
        assert await limiter.spend_tenant(tenant()) is None  # let through, logged and counted
    finally:
        await client.aclose()
