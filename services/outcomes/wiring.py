"""The outcomes service's wiring: its store, the producer of outcomes and alerts, the consumer,
the refresher (live performance, performance alerts, the shadow comparison) and the operator
port (`app`); `serve` runs them until told to stop, then finishes the batch in hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from services.common.kafka import create_producer, publish_acknowledged
from services.common.member_rights import tenant_member_ref
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.outcomes.alerts import AlertRule, raise_alerts
from services.outcomes.app import create_app, start_operator_server
from services.outcomes.consumer import build_consumer
from services.outcomes.live import keep_refreshing, reference, refresh
from services.outcomes.settings import OutcomesSettings
from services.outcomes.shadow_report import refresh_shadow
from services.outcomes.store import OutcomesStore

log = logging.getLogger(__name__)


async def open_store(settings: OutcomesSettings) -> OutcomesStore:
    key = settings.member_pseudonym_key.get_secret_value().encode()
    store = OutcomesStore(
        await create_pool(settings.infra, max_size=4),
        settings.db_schema,
        lambda tenant, member: tenant_member_ref(key, tenant, member),
    )
    await store.create_schema()
    return store


async def serve(settings: OutcomesSettings, stop: asyncio.Event) -> None:
    store = await open_store(settings)
    producer = create_producer(settings.infra, client_id=f"{settings.service_name}-outcomes")
    await producer.start()

    async def send(topic: str, envelope: EventEnvelope) -> None:
        await publish_acknowledged(producer, topic, envelope, settings.publish_timeout_seconds)

    consumer = build_consumer(settings, store, send)
    bundle_root = Path(settings.bundle_root)
    rule = AlertRule(settings.alert_min_loans, settings.alert_auc_drop, settings.alert_ece_max)
    refresher = asyncio.create_task(
        keep_refreshing(
            [
                ("live performance", lambda: refresh(store, bundle_root)),
                (
                    "performance alerts",
                    lambda: raise_alerts(
                        store,
                        lambda version: reference(bundle_root, version),
                        rule,
                        send,
                        settings.performance_alerts_topic,
                    ),
                ),
                ("shadow comparison", lambda: refresh_shadow(store)),
            ],
            settings.performance_every_seconds,
        )
    )
    operator = None
    try:
        if settings.metrics_port:
            operator = await start_operator_server(create_app(store), settings.metrics_port)
        await consumer.start()
        consuming = asyncio.create_task(consumer.run())
        log.info("outcomes consumer started", extra={"group_id": settings.consumer_group})
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await consumer.stop()
        stopped.cancel()
        await consuming
    finally:
        if operator is not None:
            await operator.stop()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await producer.stop()
        await store.pool.close()
