"""The gateway on the real Kafka and Redis in front of a real scoring gRPC server.

The tiny world, in the session's tiny model's Feast project, is scored with the tiny trained
model; the gateway runs its real lifespan (Kafka producer, Redis, gRPC channels) with
scratch topics, and is driven in-process through httpx.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from pydantic import SecretStr

from services.common.envelope import decode
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.redis_store import create_redis
from services.common.settings import InfraSettings
from services.common.signatures import webhook_signature
from services.common.telemetry import extract_kafka_context
from services.common.topics import TopicSpec, ensure_topics
from services.gateway.app import create_app
from services.gateway.events import application_message
from services.gateway.schemas import Application
from services.gateway.security import issue_token, replay_key
from services.gateway.settings import GatewaySettings
from services.scoring.__main__ import build_scorer
from services.scoring.scorer import Scorer
from services.scoring.server import start_server
from services.scoring.settings import ScoringSettings
from tests.conftest import TinyModel
from tests.integration.feast_projects import feast_environment
from tests.integration.kafka_helpers import read_topic
from training.world import World

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "gateway-it-webhook-secret"
NATIONAL_ID = "30123456"
PHONE = "0722000111"


@pytest.fixture(scope="module")
def feast_env(tiny_model: TinyModel) -> Iterator[None]:
    """The session's tiny model's Feast project, where its world is loaded (read only here)."""
    with feast_environment(tiny_model.feast_env):
        yield


@pytest.fixture(scope="module")
def world(feast_env: None, tiny_model: TinyModel) -> World:
    """The tiny world, the one the tiny model was trained on."""
    return tiny_model.world


@pytest.fixture(scope="module")
def scorer(infra: InfraSettings, world: World, tiny_bundle: Path) -> Iterator[Scorer]:
    settings = ScoringSettings(
        infra=infra,
        model_source="link",  # the tiny bundle's folder; the registry is tested on its own
        bundle_dir=str(tiny_bundle),
        metrics_port=0,
        model_threads=1,
        ledger_namespace=f"gateway-test-{uuid.uuid4().hex[:8]}",
    )
    scorer = build_scorer(settings)
    yield scorer
    scorer.close()


@dataclass
class Scoring:
    port: int
    stub: scoring_pb2_grpc.ScoringServiceStub


@pytest.fixture
async def scoring(scorer: Scorer) -> AsyncIterator[Scoring]:
    server = await start_server(scorer, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Scoring(server.port, scoring_pb2_grpc.ScoringServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def transactions_topic(infra: InfraSettings) -> TopicSpec:
    spec = TopicSpec(f"test.mm.{uuid.uuid4().hex[:12]}", partitions=3, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [spec])
    return spec


@pytest.fixture
def settings(
    infra: InfraSettings, scoring: Scoring, scratch_topic: TopicSpec, transactions_topic: TopicSpec
) -> GatewaySettings:
    return GatewaySettings(
        infra=infra,
        scoring_target=f"127.0.0.1:{scoring.port}",
        applications_topic=scratch_topic.name,
        transactions_topic=transactions_topic.name,
        jwt_secret=SecretStr("gateway-it-jwt-secret-of-32-bytes-or-more"),
        webhook_secret=SecretStr(WEBHOOK_SECRET),
        pseudonym_key=SecretStr("gateway-it-pseudonym-key"),
    )


@asynccontextmanager
async def running(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real lifespan: Kafka producer, Redis and gRPC channels opened and closed."""
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def writer(settings: GatewaySettings) -> dict[str, str]:
    token = issue_token(settings, "it", ["score:write"], tenant="dev-sacco")
    return {"Authorization": f"Bearer {token}"}


def application_body(world: World, index: int = 0, **overrides: Any) -> dict[str, Any]:
    row = world.applications.iloc[index]
    body = {
        "application_id": f"gw-it-{uuid.uuid4().hex[:8]}",
        "member_id": str(row.member_id),
        "sacco_id": str(row.sacco_id),
        "product": str(row["product"]),
        "amount_kes": float(row.amount_kes),
        "term_months": int(row.term_months),
        "applied_at": row.applied_at.isoformat(),
        "channel": str(row.channel),
        "declared_monthly_income_kes": float(row.declared_monthly_income_kes),
        "national_id": NATIONAL_ID,
    }
    return body | overrides


async def test_a_rest_score_is_the_decision_scoring_makes(
    settings: GatewaySettings, scoring: Scoring, world: World
) -> None:
    body = application_body(world, 3)
    async with running(settings) as client:
        response = await client.post("/v1/scores", json=body, headers=writer(settings))
        unknown = await client.post(
            "/v1/scores",
            json=application_body(world, member_id="M-nobody-knows"),
            headers=writer(settings),
        )
    assert response.status_code == 200, response.text
    direct = (
        await scoring.stub.Score(
            scoring_pb2.ScoreRequest(
                application=application_message(
                    settings, Application.model_validate(body), "dev-sacco"
                )
            )
        )
    ).decision
    got = response.json()
    assert got["decision_id"] == direct.decision_id
    assert got["application_id"] == body["application_id"] == direct.application_id
    assert got["member_id"] == body["member_id"]
    assert got["model_version"] == direct.model_version
    assert got["probability_of_default"] == pytest.approx(direct.probability_of_default, abs=1e-12)
    assert got["score"] == direct.score and 300 <= got["score"] <= 900
    assert got["band"] in {"approve", "review", "decline"}
    assert [r["code"] for r in got["reasons"]] == [r.code for r in direct.reasons]

    assert unknown.status_code == 404
    assert "M-nobody-knows" in unknown.json()["detail"]


async def test_an_application_lands_on_kafka_in_the_callers_trace(
    settings: GatewaySettings,
    world: World,
    infra: InfraSettings,
    spans: InMemorySpanExporter,
) -> None:
    body = application_body(world, 5)
    with trace.get_tracer("test").start_as_current_span("partner app") as parent:
        trace_id = parent.get_span_context().trace_id
        traceparent = f"00-{trace_id:032x}-{parent.get_span_context().span_id:016x}-01"
    async with running(settings) as client:
        response = await client.post(
            "/v1/applications",
            json=body,
            headers=writer(settings) | {"traceparent": traceparent},
        )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/applications/{body['application_id']}/decision"

    (record,) = await read_topic(infra, settings.applications_topic, 1)
    event = decode(record.value, LoanApplicationSubmitted)
    assert event.payload.application_id == body["application_id"]
    assert event.envelope.producer == "gateway" and record.key == body["member_id"].encode()
    assert event.payload.national_id_hash and NATIONAL_ID not in event.payload.national_id_hash
    raw = record.value + b"".join(v for _k, v in record.headers)
    assert NATIONAL_ID.encode() not in raw  # the raw id is nowhere in what was published

    carried = trace.get_current_span(extract_kafka_context(record.headers)).get_span_context()
    assert carried.trace_id == trace_id
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    gateway_spans = {
        s.context.span_id for s in spans.get_finished_spans() if s.context.trace_id == trace_id
    }
    assert carried.span_id in gateway_spans  # the parent is the gateway's request span


def signed(body: bytes) -> dict[str, str]:
    ts = int(time.time())
    return {
        "X-Alama-Timestamp": str(ts),
        "X-Alama-Signature": webhook_signature(WEBHOOK_SECRET, ts, body),
        "Content-Type": "application/json",
    }


async def test_a_signed_webhook_lands_once_and_its_replay_is_409(
    settings: GatewaySettings, infra: InfraSettings
) -> None:
    ids = [f"QK{uuid.uuid4().hex[:10].upper()}" for _ in range(3)]
    body = json.dumps(
        {
            "transactions": [
                {
                    "transaction_id": tid,
                    "member_id": "M0000001",
                    "kind": kind,
                    "amount_kes": 250.0 * (i + 1),
                    "balance_kes": 1000.0,
                    "occurred_at": "2026-01-05T08:30:00+03:00",
                    "counterparty_phone": PHONE,
                }
                for i, (tid, kind) in enumerate(
                    zip(ids, ["inflow", "airtime", "betting"], strict=True)
                )
            ]
        }
    ).encode()
    headers = signed(body)
    async with running(settings) as client:
        first = await client.post("/v1/webhooks/mobile-money", content=body, headers=headers)
        again = await client.post("/v1/webhooks/mobile-money", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json() == {"accepted": 3}
    assert again.status_code == 409 and "already accepted" in again.json()["detail"]

    records = await read_topic(infra, settings.transactions_topic, 3)
    events = [decode(r.value, MobileMoneyTransaction) for r in records]
    assert sorted(e.payload.transaction_id for e in events) == sorted(ids)
    assert len({e.event_id for e in events}) == 3
    for record in records:
        assert b"722000111" not in record.value
    redis = create_redis(infra)
    try:
        ttl = await redis.ttl(replay_key(headers["X-Alama-Signature"]))
    finally:
        await redis.aclose()
    assert 0 < ttl <= settings.webhook_tolerance_seconds  # remembered in the real Redis


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_readiness_follows_scoring(settings: GatewaySettings) -> None:
    async with running(settings) as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"kafka": "ok", "redis": "ok", "scoring": "ok"},
    }
    assert live.status_code == 200

    nowhere = settings.model_copy(update={"scoring_target": f"127.0.0.1:{closed_port()}"})
    async with running(nowhere) as client:
        down = await client.get("/readyz")
        live = await client.get("/healthz")
    assert down.status_code == 503
    checks = down.json()["checks"]
    assert checks["kafka"] == "ok" and checks["redis"] == "ok"
    assert checks["scoring"].startswith("error")
    assert live.status_code == 200  # liveness never depends on scoring
