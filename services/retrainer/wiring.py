"""The retrainer's wiring: its store, the consumer (with the producer of its answers to members'
erasure and export requests), and the loop that asks the policy every `check_every_seconds` and
runs the job when due; `serve` runs them until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.common.kafka import create_producer, publish_acknowledged
from services.common.member_rights import tenant_member_ref
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.retrainer.consumer import build_consumer
from services.retrainer.runner import Runner
from services.retrainer.settings import RetrainerSettings
from services.retrainer.store import RetrainerStore

log = logging.getLogger(__name__)


async def open_store(settings: RetrainerSettings) -> RetrainerStore:
    key = settings.member_pseudonym_key.get_secret_value().encode()
    store = RetrainerStore(
        await create_pool(settings.infra, max_size=4),
        settings.db_schema,
        lambda tenant, member: tenant_member_ref(key, tenant, member),
    )
    await store.create_schema()
    return store


async def keep_deciding(runner: Runner, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await runner.tick()
        except Exception:
            log.exception("the retraining check failed; trying again at the next one")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()


async def serve(settings: RetrainerSettings, stop: asyncio.Event) -> None:
    store = await open_store(settings)
    runner = Runner(store, settings)
    await runner.restore()
    producer = create_producer(settings.infra, client_id=f"{settings.service_name}-members")

    async def send(topic: str, envelope: EventEnvelope) -> None:
        await publish_acknowledged(producer, topic, envelope, settings.publish_timeout_seconds)

    consumer = build_consumer(settings, store, send)
    deciding = asyncio.create_task(keep_deciding(runner, settings.check_every_seconds, stop))
    try:
        await producer.start()
        await consumer.start()
        consuming = asyncio.create_task(consumer.run())
        log.info("retrainer started", extra={"group_id": settings.consumer_group})
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await consumer.stop()
        stopped.cancel()
        await consuming
    finally:
        deciding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deciding
        await producer.stop()
        await store.pool.close()
