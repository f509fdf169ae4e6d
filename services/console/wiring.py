"""The console's own wiring: its store, the producer of review outcomes, the consumer that
fills the queue, and the explanation client; each closed in reverse order at shutdown."""

from __future__ import annotations

import asyncio
import logging

from services.common.kafka import create_producer, publish_acknowledged
from services.common.member_rights import tenant_member_ref
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.console.app import Console
from services.console.audit_trail import AuditTrailReader
from services.console.consumer import build_consumer
from services.console.explanations import ExplanationReader
from services.console.model_card import ModelReader
from services.console.people import People
from services.console.review import EventSender, ReviewDesk
from services.console.settings import ConsoleSettings
from services.console.store import ConsoleStore

log = logging.getLogger(__name__)


async def open_store(settings: ConsoleSettings) -> ConsoleStore:
    pool = await create_pool(settings.infra, max_size=8)
    key = settings.member_pseudonym_key.get_secret_value().encode()
    store = ConsoleStore(
        pool, settings.db_schema, lambda tenant, member: tenant_member_ref(key, tenant, member)
    )
    await store.create_schema()
    return store


async def build_console(settings: ConsoleSettings) -> Console:
    store = await open_store(settings)
    producer = create_producer(settings.infra, client_id=f"{settings.service_name}-outcomes")
    await producer.start()

    async def send(topic: str, envelope: EventEnvelope) -> None:
        await publish_acknowledged(producer, topic, envelope, settings.publish_timeout_seconds)

    consumer = build_consumer(settings, store, send)
    try:
        await consumer.start()
    except BaseException:
        await producer.stop()
        await store.pool.close()
        raise
    consuming = asyncio.create_task(consumer.run(), name="console-consumer")
    explanations = ExplanationReader(
        settings.explanation_target, settings.explanation_timeout_seconds
    )

    async def stop_consumer() -> None:
        await consumer.stop()
        for result in await asyncio.gather(consuming, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("the console consumer failed", exc_info=result)

    outcomes = EventSender(
        producer, settings.review_outcomes_topic, settings.publish_timeout_seconds
    )
    appeals = EventSender(producer, settings.appeals_topic, settings.publish_timeout_seconds)
    trail = AuditTrailReader(settings.audit_target) if settings.audit_target else None
    model = (
        ModelReader(settings.scoring_target, settings.explanation_timeout_seconds)
        if settings.scoring_target
        else None
    )
    return Console(
        settings=settings,
        store=store,
        people=People(store, settings),
        desk=ReviewDesk(store, settings, outcomes, appeals),
        explanations=explanations,
        model=model,
        closers=[store.pool.close, producer.stop, stop_consumer, explanations.close]
        + ([trail.close] if trail else [])
        + ([model.close] if model else []),
        trail=trail,
    )
