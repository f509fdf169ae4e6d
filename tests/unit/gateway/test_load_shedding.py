"""Load shedding: bodies refused before they are read (413), per-tenant rates (429 with
Retry-After), a cap on requests in flight (503 at once while the admitted ones are served),
bounded request schemas and a deadline on every outbound call.

Nothing here depends on how fast the machine is: concurrency is arranged with events, and the
rate limits are per minute or hour so no window can pass during a test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from limits.aio.storage import MemoryStorage
from limits.errors import StorageError
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.gateway.app import create_app
from services.gateway.clients import Backends, KafkaEvents, RedisReplayStore, RedisRevocations
from services.gateway.errors import UpstreamUnavailable
from services.gateway.rate_limits import RateLimiter
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.conftest import Gateway, bearer
from tests.unit.gateway.fakes import (
    FakeEvents,
    FakeExplanations,
    FakeReplayStore,
    FakeRevocations,
    FakeScoring,
)
from tests.unit.gateway.test_webhooks import signed

API_LIMIT = 64 * 1024
WEBHOOK_LIMIT = 8 * 1024


def shedding_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "jwt_secret": SecretStr("unit-test-jwt-secret-of-at-least-32-bytes"),
        "webhook_secret": SecretStr("unit-test-webhook-secret"),
        "pseudonym_key": SecretStr("unit-test-pseudonym-key"),
        "max_body_bytes": API_LIMIT,
        "max_webhook_body_bytes": WEBHOOK_LIMIT,
        "rate_limit_default": "1000/hour",
        "webhook_rate_limit": "1000/hour",
    }
    return GatewaySettings(**(values | overrides))


def application(application_id: str = "A-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "application_id": application_id,
        "member_id": "M-1",
        "product": "emergency",
        "amount_kes": 5_000,
        "term_months": 6,
    }
    return body | overrides


@asynccontextmanager
async def serving(
    settings: GatewaySettings,
    *,
    scoring: FakeScoring | None = None,
    limiter: RateLimiter | None = None,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, FakeScoring]]:
    scoring = scoring or FakeScoring()
    app = create_app(
        settings,
        backends=Backends(
            scoring=scoring,
            explanations=FakeExplanations(),
            events=FakeEvents(),
            replay=FakeReplayStore(),
            revocations=FakeRevocations(),
            limiter=limiter,
        ),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield app, client, scoring


class RecordingScoring(FakeScoring):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision:
        self.calls += 1
        return await super().score(application)


def shed(reason: str) -> float:
    value = REGISTRY.get_sample_value("alama_gateway_shed_requests_total", {"reason": reason})
    return value or 0.0


# --- (a) body limits before parsing -------------------------------------------------------


async def call_raw(
    app: FastAPI, path: str, headers: list[tuple[bytes, bytes]], *, trickle: bool = False
) -> dict[str, Any]:
    """One request straight through ASGI, recording whether the app ever read the body;
    `trickle`: the body's first bytes arrive, the rest never does."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gateway"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("gateway", 80),
    }
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if trickle and reads > 1:
            await asyncio.Event().wait()  # the client stopped sending
        body = b"{" if trickle else b"{}"
        return {"type": "http.request", "body": body, "more_body": trickle}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {"status": start["status"], "reads": reads, "headers": dict(start["headers"])}


@pytest.mark.parametrize(
    ("path", "limit"), [("/v1/scores", API_LIMIT), ("/v1/webhooks/mobile-money", WEBHOOK_LIMIT)]
)
async def test_a_declared_oversized_body_is_413_before_a_byte_is_read(
    path: str, limit: int
) -> None:
    scoring = RecordingScoring()
    async with serving(shedding_settings(), scoring=scoring) as (app, _client, _):
        before = shed("body_too_large")
        answer = await call_raw(
            app,
            path,
            [
                (b"content-type", b"application/json"),
                (b"content-length", str(limit + 1).encode()),
                (b"x-api-key", b"dev-partner-key"),
            ],
        )
    assert answer["status"] == 413
    assert answer["reads"] == 0  # refused on Content-Length alone
    assert scoring.calls == 0
    assert shed("body_too_large") == before + 1


async def test_a_body_that_does_not_arrive_in_time_is_408_and_frees_its_slot() -> None:
    settings = shedding_settings(body_read_timeout_seconds=0.05, max_in_flight=1)
    scoring = RecordingScoring()
    async with serving(settings, scoring=scoring) as (app, client, _):
        before = shed("body_too_slow")
        answer = await call_raw(
            app,
            "/v1/scores",
            [(b"content-type", b"application/json"), (b"x-api-key", b"dev-partner-key")],
            trickle=True,
        )
        assert answer["status"] == 408
        assert shed("body_too_slow") == before + 1
        assert scoring.calls == 0
        served = await client.post(
            "/v1/scores", json=application(), headers={"X-API-Key": "dev-partner-key"}
        )
        assert served.status_code == 200  # the one slot is free again


async def chunks(count: int, size: int, pulled: list[int]) -> AsyncIterator[bytes]:
    for _ in range(count):
        pulled.append(size)
        yield b" " * size


@pytest.mark.parametrize(
    ("path", "limit"), [("/v1/scores", API_LIMIT), ("/v1/webhooks/mobile-money", WEBHOOK_LIMIT)]
)
async def test_a_streamed_oversized_body_is_413_without_reading_it_all(
    path: str, limit: int
) -> None:
    """No Content-Length (chunked): the body is counted as it is read and refused past the
    limit, long before its end."""
    scoring = RecordingScoring()
    pulled: list[int] = []
    chunk = 4 * 1024
    async with serving(shedding_settings(), scoring=scoring) as (_app, client, _):
        response = await client.post(
            path,
            content=chunks(1000, chunk, pulled),  # 4 MB on offer
            headers={"content-type": "application/json", "X-API-Key": "dev-partner-key"},
        )
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["detail"]
    assert sum(pulled) <= limit + 2 * chunk
    assert scoring.calls == 0


async def test_the_webhook_and_the_json_api_have_their_own_limits() -> None:
    body = json.dumps(application(attributes={f"column_{i}": "v" * 20 for i in range(400)}))
    assert WEBHOOK_LIMIT < len(body) < API_LIMIT
    async with serving(shedding_settings()) as (_app, client, _):
        api = await client.post(
            "/v1/scores",
            content=body,
            headers={"content-type": "application/json", "X-API-Key": "dev-partner-key"},
        )
        webhook = await client.post(
            "/v1/webhooks/mobile-money", content=body, headers=signed(body.encode())
        )
    assert api.status_code == 200, api.text
    assert webhook.status_code == 413


# --- (b) bounded request schemas ----------------------------------------------------------


def _unbounded(schema: dict[str, Any], node: Any, where: str, seen: set[str]) -> Iterator[str]:
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _unbounded(schema, item, f"{where}[{i}]", seen)
        return
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            yield from _unbounded(schema, schema["components"]["schemas"][name], name, seen)
        return
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        if node.get("format") != "date-time":  # parsed in linear time, within the body limit
            yield where
    if kind == "array" and "maxItems" not in node:
        yield where
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        if "maxProperties" not in node:
            yield where
    for key in ("properties",):
        for name, child in node.get(key, {}).items():
            yield from _unbounded(schema, child, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _unbounded(schema, node[key], f"{where}.{key}", seen)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            yield from _unbounded(schema, node[key], where, seen)


async def test_every_request_schema_bounds_its_strings_lists_and_maps(gateway: Gateway) -> None:
    schema = gateway.app.openapi()
    bodies = [
        (f"{method.upper()} {path}", op["requestBody"]["content"]["application/json"]["schema"])
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "requestBody" in op
    ]
    assert {"POST /v1/scores", "POST /v1/webhooks/mobile-money"} <= {b for b, _ in bodies}
    unbounded = [u for name, body in bodies for u in _unbounded(schema, body, name, set())]
    assert unbounded == []
    parameters = [
        (path, p)
        for path, item in schema["paths"].items()
        for op in item.values()
        if isinstance(op, dict)
        for p in op.get("parameters", [])
        if p["in"] in ("path", "query")
    ]
    assert all(
        "maxLength" in p["schema"] for _, p in parameters if p["schema"].get("type") == "string"
    )


# --- (c) per-tenant rate limits -----------------------------------------------------------


async def test_a_tenant_over_its_rate_gets_429_and_others_are_not_limited() -> None:
    settings = shedding_settings(rate_limit_default="3/hour", rate_limits={"sacco-big": "5/hour"})
    limiter = RateLimiter.in_memory(settings)
    async with serving(settings, limiter=limiter) as (_app, client, _):
        a = bearer(settings, "score:write", tenant="sacco-a")
        served = [await client.post("/v1/scores", json=application(), headers=a) for _ in range(3)]
        assert [r.status_code for r in served] == [200, 200, 200]
        assert [r.headers["RateLimit-Remaining"] for r in served] == ["2", "1", "0"]
        assert served[0].headers["RateLimit-Limit"] == "3"
        assert served[0].headers["RateLimit-Policy"] == "3;w=3600"

        before = shed("rate_limited")
        refused = await client.post("/v1/scores", json=application(), headers=a)
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert "rate limit" in refused.json()["detail"]
        assert shed("rate_limited") == before + 1

        # sacco-a's burst limits nobody else: a tenant on the default, and one with its own rate
        b = bearer(settings, "score:write", tenant="sacco-b")
        assert (await client.post("/v1/scores", json=application(), headers=b)).status_code == 200
        big = bearer(settings, "decisions:read", tenant="sacco-big")
        answers = [await client.get("/v1/decisions/d-none", headers=big) for _ in range(6)]
        assert [r.status_code for r in answers] == [404] * 5 + [429]
        assert answers[0].headers["RateLimit-Limit"] == "5"


async def test_the_webhook_is_limited_per_client_address_before_its_signature() -> None:
    settings = shedding_settings(webhook_rate_limit="2/hour")
    async with serving(settings, limiter=RateLimiter.in_memory(settings)) as (_app, client, _):
        answers = [await client.post("/v1/webhooks/mobile-money", content=b"{}") for _ in range(3)]
    assert [r.status_code for r in answers] == [401, 401, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1


class BrokenStorage(MemoryStorage):
    async def acquire_entry(self, *args: Any, **kwargs: Any) -> bool:
        raise StorageError(ConnectionError("redis is down"))


async def test_a_rate_limiter_without_redis_lets_requests_through_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = shedding_settings(rate_limit_default="1/hour")
    limiter = RateLimiter(BrokenStorage(), settings)
    before = REGISTRY.get_sample_value("alama_gateway_rate_limiter_errors_total") or 0.0
    async with serving(settings, limiter=limiter) as (_app, client, _):
        a = bearer(settings, "score:write", tenant="sacco-a")
        answers = [await client.post("/v1/scores", json=application(), headers=a) for _ in range(2)]
    assert [r.status_code for r in answers] == [200, 200]
    assert "RateLimit-Limit" not in answers[0].headers
    assert REGISTRY.get_sample_value("alama_gateway_rate_limiter_errors_total") == before + 2
    assert "rate limit not checked" in caplog.text


# --- (d) the in-flight cap ----------------------------------------------------------------


class HeldScoring(FakeScoring):
    """Scoring that holds every call until released, and says when `expected` are waiting."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.waiting = 0
        self.all_waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_waiting.set()
        await self.release.wait()
        return await super().score(application)


async def test_beyond_the_in_flight_cap_a_request_is_503_at_once_while_the_others_are_served() -> (
    None
):
    settings = shedding_settings(max_in_flight=2, retry_after_seconds=2)
    scoring = HeldScoring(expected=2)
    async with serving(settings, scoring=scoring) as (_app, client, _):
        headers = {"X-API-Key": "dev-partner-key"}
        slow = [
            asyncio.create_task(
                client.post("/v1/scores", json=application(f"A-{i}"), headers=headers)
            )
            for i in range(2)
        ]
        await asyncio.wait_for(scoring.all_waiting.wait(), timeout=30)

        before = shed("in_flight")
        refused = await client.post("/v1/scores", json=application("A-3"), headers=headers)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "2"
        assert shed("in_flight") == before + 1
        assert (await client.get("/healthz")).status_code == 200  # probes are never shed
        assert not any(task.done() for task in slow)  # it did not wait for a slot

        scoring.release.set()
        served = await asyncio.gather(*slow)
        assert [r.status_code for r in served] == [200, 200]
        again = await client.post("/v1/scores", json=application("A-4"), headers=headers)
        assert again.status_code == 200  # slots are given back


async def test_a_full_scoring_queue_is_503_with_retry_after(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/scores",
        json=application(member_id="M-exhausted"),
        headers=bearer(gateway.settings, "score:write"),
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "RESOURCE_EXHAUSTED" in response.json()["detail"]


# --- (e) a deadline on every outbound call ------------------------------------------------


class StuckProducer:
    """A producer whose broker never acknowledges."""

    async def send(self, *_args: Any, **_kwargs: Any) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()


class StuckRedis:
    async def _never(self, *_args: Any, **_kwargs: Any) -> None:
        await asyncio.Event().wait()

    set = delete = exists = ping = _never


async def test_a_kafka_publish_the_broker_never_acknowledges_is_503() -> None:
    events = KafkaEvents(StuckProducer(), timeout=1.0, publish_timeout=0.05)  # type: ignore[arg-type]
    envelope = EventEnvelope(event_id="e-1", payload_type="x", subject="s")
    with pytest.raises(UpstreamUnavailable):
        await events.publish("topic", [envelope])


async def test_a_stuck_redis_is_503_for_replay_and_revocations() -> None:
    redis: Any = StuckRedis()
    with pytest.raises(UpstreamUnavailable):
        await RedisReplayStore(redis, timeout=0.05).claim("k", 10)
    with pytest.raises(UpstreamUnavailable):
        await RedisRevocations(redis, timeout=0.05).revoked("jti")
    with pytest.raises(UpstreamUnavailable):
        await RedisReplayStore(redis, timeout=0.05).ping()
    await RedisReplayStore(redis, timeout=0.05).release("k")  # logged, never raised


async def test_the_gateway_passes_its_deadlines_to_every_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.gateway import clients

    class Producer:
        async def start(self) -> None:
            pass

    monkeypatch.setattr(clients, "create_producer", lambda *_a, **_k: Producer())
    settings = shedding_settings(
        grpc_timeout_seconds=1.5, kafka_publish_timeout_seconds=0.7, redis_timeout_seconds=0.2
    )
    backends = await clients.open_backends(settings)
    try:
        assert isinstance(backends.scoring, clients.GrpcScoring)
        assert backends.scoring.timeout == 1.5
        assert isinstance(backends.explanations, clients.GrpcExplanations)
        assert backends.explanations.timeout == 1.5
        assert isinstance(backends.events, KafkaEvents)
        assert backends.events.publish_timeout == 0.7
        assert isinstance(backends.replay, RedisReplayStore) and backends.replay.timeout == 0.2
        assert isinstance(backends.revocations, RedisRevocations)
        assert backends.revocations.timeout == 0.2
        assert backends.limiter is not None and backends.limiter.timeout == 0.2
    finally:
        await backends.scoring.close()
        await backends.explanations.close()
        assert isinstance(backends.replay, RedisReplayStore)
        await backends.replay.redis.aclose()


async def test_a_failing_limiter_warns_once_per_interval_and_counts_every_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = shedding_settings(rate_limit_default="1/hour")
    limiter = RateLimiter(BrokenStorage(), settings)
    now = [1000.0]
    limiter.clock = lambda: now[0]
    before = REGISTRY.get_sample_value("alama_gateway_rate_limiter_errors_total") or 0.0
    caplog.set_level("WARNING", logger="services.gateway.rate_limits")

    def warnings() -> list[Any]:
        return [r for r in caplog.records if "rate limit not checked" in r.getMessage()]

    for _ in range(5):
        assert await limiter.spend_tenant("sacco-a") is None  # let through
    assert [r.failed_checks for r in warnings()] == [1]
    now[0] += RateLimiter.WARN_EVERY_SECONDS
    assert await limiter.spend_address("10.0.0.1") is None
    assert [r.failed_checks for r in warnings()] == [1, 5]  # the four unlogged and this one
    assert REGISTRY.get_sample_value("alama_gateway_rate_limiter_errors_total") == before + 6
