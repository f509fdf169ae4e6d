"""The gateway app on fake backends: gRPC fakes for scoring and explanation (so the real gRPC
clients and their error mapping run), in-memory Kafka and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.gateway.app import create_app
from services.gateway.clients import Backends, GrpcExplanations, GrpcScoring
from services.gateway.security import issue_token
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.fakes import (
    FakeEvents,
    FakeGrpc,
    FakeReplayStore,
    FakeRevocations,
    start_fake_grpc,
)

WEBHOOK_SECRET = "unit-test-webhook-secret"
#: A second SACCO whose deliveries name it in X-Alama-Tenant, signed with its own secret.
OTHER_TENANT, OTHER_WEBHOOK_SECRET = "sacco-b", "unit-test-webhook-secret-of-sacco-b"


@pytest.fixture
def settings() -> GatewaySettings:
    return GatewaySettings(
        jwt_secret=SecretStr("unit-test-jwt-secret-of-at-least-32-bytes"),
        webhook_secret=SecretStr(WEBHOOK_SECRET),
        webhook_tenants={OTHER_TENANT: SecretStr(OTHER_WEBHOOK_SECRET)},
        pseudonym_key=SecretStr("unit-test-pseudonym-key"),
        max_call_applications=5,
        max_webhook_transactions=3,
        webhook_tolerance_seconds=300,
        grpc_timeout_seconds=2.0,
    )


def bearer(
    settings: GatewaySettings,
    *scopes: str,
    ttl: timedelta = timedelta(minutes=5),
    tenant: str = "dev-sacco",
) -> dict:
    token = issue_token(settings, "officer-1", scopes, ttl, tenant=tenant)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: FastAPI
    settings: GatewaySettings
    grpc: FakeGrpc
    events: FakeEvents
    replay: FakeReplayStore


@pytest.fixture
async def gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    fake = await start_fake_grpc()
    channel = grpc.aio.insecure_channel(fake.target)
    events, replay = FakeEvents(), FakeReplayStore()
    backends = Backends(
        scoring=GrpcScoring(channel, settings.grpc_timeout_seconds),
        explanations=GrpcExplanations(channel, settings.grpc_timeout_seconds),
        events=events,
        replay=replay,
        revocations=FakeRevocations(),
    )
    app = create_app(settings, backends=backends)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(client, app, settings, fake, events, replay)
    finally:
        await channel.close()
        await fake.server.stop(None)
