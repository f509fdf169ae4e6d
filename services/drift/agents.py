"""The drift stream processor: a Faust agent on `credit.decisions` feeding the drift monitor.

Each `CreditDecision` envelope carries the features as scored and the score; the agent adds them
to the sliding window, exports the PSIs as Prometheus gauges and publishes `DriftAlert`
envelopes to `drift.alerts`. Records go through the shared consumer layer
(`services.common.faust_app.StreamConsumer`): what is not a decision envelope goes to the
dead-letter twin with its reason, an alert that cannot be sent during an outage is retried, and
the agent never stops on bad input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import faust
from faust.types import AgentT, EventT, StreamT

from services.common.envelope import Event
from services.common.faust_app import (
    FaustRecord,
    StreamConsumer,
    create_faust_app,
    faust_sender,
)
from services.common.kafka import DeadLetterSend
from services.common.liveness import Liveness
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.drift.alerts import alert_envelope
from services.drift.metrics import ALERTS, OTHER_MODEL, PSI, WINDOW_FILL
from services.drift.monitor import DriftCheck, DriftMonitor
from services.drift.reference import DriftReference, load_reference
from services.drift.settings import DriftSettings

log = logging.getLogger(__name__)

AGENT = "drift.watch"
#: sends an envelope (an alert, a dead letter) to a topic with extra headers
Publisher = DeadLetterSend


@dataclass
class DriftService:
    """The Faust app, its agent and the monitor they feed; built by `create_drift_app`."""

    settings: DriftSettings
    monitor: DriftMonitor
    app: faust.App
    agent: AgentT[Any]
    publish: Publisher
    consumer: StreamConsumer

    @property
    def liveness(self) -> Liveness:
        return self.consumer.liveness

    async def handle(self, record: FaustRecord) -> DriftCheck:
        """Feed one record to the monitor through the shared consumer layer (what is not a
        decision is dead-lettered with its reason)."""
        checks: list[DriftCheck] = []

        async def observe(event: Event[Any]) -> None:
            if not checks:  # a retry (an alert that could not be sent) observes only once
                decision: CreditDecision = event.payload
                reference = self.monitor.reference.model_version
                if decision.model_version and decision.model_version != reference:
                    # another model's decision (in flight across a promotion or a rollback): its
                    # inputs are not what this reference describes
                    OTHER_MODEL.labels(decision.model_version).inc()
                    checks.append(DriftCheck())
                    return
                at = (
                    decision.decided_at.ToDatetime(tzinfo=UTC)
                    if decision.HasField("decided_at")
                    else event.occurred_at
                )
                checks.append(
                    self.monitor.observe(
                        dict(decision.features),
                        float(decision.score),
                        at,
                        band=int(decision.band) or None,  # UNSPECIFIED: no band to compare
                    )
                )
            await self._report(checks[0])

        heartbeat = self.consumer.heartbeat(AGENT)
        heartbeat.began()
        try:
            await self.consumer.process(AGENT, record, CreditDecision, observe)
        finally:
            heartbeat.finished()
        return checks[0] if checks else DriftCheck()

    def follow(self, reference: DriftReference) -> bool:
        """Compare with `reference` from now on (a promoted or rolled-back champion's), in a
        window of its own decisions; True when it changed."""
        if reference.model_version == self.monitor.reference.model_version:
            return False
        log.info(
            "drift reference follows the champion",
            extra={
                "previous": self.monitor.reference.model_version,
                "current": reference.model_version,
            },
        )
        self.monitor = DriftMonitor(
            reference,
            window_size=self.settings.window_size,
            threshold=self.settings.psi_alert_threshold,
            evaluate_every=self.settings.evaluate_every,
        )
        return True

    async def _report(self, check: DriftCheck) -> None:
        version = self.monitor.reference.model_version
        WINDOW_FILL.labels(version).set(self.monitor.window.fill)
        for subject, value in check.psi.items():
            PSI.labels(subject, version).set(value)
        for alert in check.alerts:
            log.warning(
                "drift alert",
                extra={"subject": alert.subject, "psi": alert.psi, "threshold": alert.threshold},
            )
            await self.publish(
                self.settings.alerts_topic, alert_envelope(alert, self.settings.service_name), []
            )
            ALERTS.labels(alert.subject, version).inc()


def create_drift_app(
    settings: DriftSettings,
    reference: DriftReference | None = None,
    publisher: Publisher | None = None,
) -> DriftService:
    """Load the bundle reference (failing clearly when absent) and wire the agent to it."""
    reference = reference or current_reference(settings)
    monitor = DriftMonitor(
        reference,
        window_size=settings.window_size,
        threshold=settings.psi_alert_threshold,
        evaluate_every=settings.evaluate_every,
    )
    app = create_faust_app(settings, app_id=settings.consumer_group)
    publish = publisher or faust_sender(
        app, settings.service_name, timeout_s=settings.publish_timeout_s
    )
    consumer = StreamConsumer(
        app,
        service=settings.service_name,
        group_id=settings.consumer_group,
        topics=[settings.decisions_topic],
        send=publish,
        infra=settings.infra,
        liveness=Liveness(settings.liveness_stall_s),
        lag_every_s=settings.lag_every_s,
        retry=settings.retry_policy,
    )
    consumer.agent(AGENT, [settings.decisions_topic])
    service: DriftService

    async def watch(stream: StreamT[bytes]) -> AsyncIterator[DriftCheck]:
        event: EventT[bytes]
        async for event in stream.events():
            yield await service.handle(FaustRecord.of(event, settings.decisions_topic))

    agent = app.agent(app.topic(settings.decisions_topic), name=AGENT)(watch)
    service = DriftService(settings, monitor, app, agent, publish, consumer)

    @app.timer(settings.reference_check_seconds, name="drift.follow_champion")
    async def follow_champion() -> None:
        try:
            latest = await asyncio.to_thread(current_reference, settings)
        except Exception:
            log.exception("the champion's drift reference could not be read; keeping the old one")
            return
        service.follow(latest)

    return service


def current_reference(settings: DriftSettings) -> DriftReference:
    """The reference of the model that decides now: the `current` link's bundle, or the
    registry's champion (downloaded into the bundle root when missing)."""
    if settings.reference_source == "link":
        return load_reference(Path(settings.bundle_dir).resolve())
    from services.common.model_registry import CHAMPION, ModelLocator

    locator = ModelLocator(bundle_root=settings.bundle_root)
    return load_reference(locator.folder(locator.by_alias(CHAMPION).bundle_version))
