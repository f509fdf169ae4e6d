"""The retrainer's wiring: its store, the consumer, and the loop that asks the policy every
`check_every_seconds` and runs the job when due; `serve` runs them until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.common.postgres import create_pool
from services.retrainer.consumer import build_consumer
from services.retrainer.runner import Runner
from services.retrainer.settings import RetrainerSettings
from services.retrainer.store import RetrainerStore

log = logging.getLogger(__name__)


async def open_store(settings: RetrainerSettings) -> RetrainerStore:
    store = RetrainerStore(await create_pool(settings.infra, max_size=4), settings.db_schema)
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
    consumer = build_consumer(settings, store)
    deciding = asyncio.create_task(keep_deciding(runner, settings.check_every_seconds, stop))
    try:
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
        await store.pool.close()
