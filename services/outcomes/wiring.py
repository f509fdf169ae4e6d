"""The outcomes service's wiring: its store, the producer of outcomes, the consumer and the live
performance refresher; `serve` runs them until told to stop, then finishes the batch in hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from services.common.kafka import create_producer, publish_acknowledged
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.outcomes.consumer import build_consumer
from services.outcomes.live import keep_refreshing
from services.outcomes.settings import OutcomesSettings
from services.outcomes.store import OutcomesStore

log = logging.getLogger(__name__)


async def open_store(settings: OutcomesSettings) -> OutcomesStore:
    store = OutcomesStore(await create_pool(settings.infra, max_size=4), settings.db_schema)
    await store.create_schema()
    return store


async def serve(settings: OutcomesSettings, stop: asyncio.Event) -> None:
    store = await open_store(settings)
    producer = create_producer(settings.infra, client_id=f"{settings.service_name}-outcomes")
    await producer.start()

    async def send(topic: str, envelope: EventEnvelope) -> None:
        await publish_acknowledged(producer, topic, envelope, settings.publish_timeout_seconds)

    consumer = build_consumer(settings, store, send)
    refresher = asyncio.create_task(
        keep_refreshing(store, Path(settings.bundle_root), settings.performance_every_seconds)
    )
    try:
        await consumer.start()
        consuming = asyncio.create_task(consumer.run())
        log.info("outcomes consumer started", extra={"group_id": settings.consumer_group})
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await consumer.stop()
        stopped.cancel()
        await consuming
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await producer.stop()
        await store.pool.close()
