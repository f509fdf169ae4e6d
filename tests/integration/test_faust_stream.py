"""A Faust agent built by the shared factory consumes envelopes from the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.common.envelope import decode, wrap
from services.common.faust_app import create_faust_app
from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.settings import ServiceSettings
from services.common.topics import TopicSpec

pytestmark = pytest.mark.integration


async def test_faust_agent_consumes_envelopes_from_kafka(
    service_settings: ServiceSettings, scratch_topic: TopicSpec
) -> None:
    app = create_faust_app(service_settings, app_id=f"alama-it-{uuid.uuid4().hex[:8]}")
    seen: list[str] = []
    done = asyncio.Event()

    @app.agent(app.topic(scratch_topic.name))
    async def ingest(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            seen.append(decode(value, MobileMoneyTransaction).payload.transaction_id)
            if len(seen) >= 5:
                done.set()

    producer = create_producer(service_settings.infra, client_id="faust-test")
    await producer.start()
    try:
        for i in range(5):
            txn = MobileMoneyTransaction(transaction_id=f"txn-{i}", member_id=f"m-{i}")
            await (await publish(producer, scratch_topic.name, wrap(txn, producer="mpesa")))
    finally:
        await producer.stop()

    await app.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await app.stop()
    assert sorted(seen) == [f"txn-{i}" for i in range(5)]
