"""The drift stream processor: a Faust agent on `credit.decisions` feeding the drift monitor.

Each `CreditDecision` envelope carries the features as scored and the score; the agent adds them
to the sliding window, exports the PSIs as Prometheus gauges and publishes `DriftAlert`
envelopes to `drift.alerts`. A record that is not a decision envelope goes to the dead-letter
twin with its reason; the agent never stops on bad input.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import faust
from faust.types import AgentT, EventT, StreamT
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common.envelope import decode, encode
from services.common.errors import InvalidEvent
from services.common.faust_app import create_faust_app
from services.common.kafka import dead_letter_envelope
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.telemetry import (
    EVENTS_CONSUMED,
    EVENTS_PUBLISHED,
    HANDLE_SECONDS,
    extract_kafka_context,
    inject_kafka_headers,
)
from services.common.topics import dead_letter_topic
from services.drift.alerts import alert_envelope
from services.drift.metrics import ALERTS, PSI, WINDOW_FILL
from services.drift.monitor import DriftCheck, DriftMonitor
from services.drift.reference import DriftReference, load_reference
from services.drift.settings import DriftSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("alama.drift")

Publisher = Callable[[str, EventEnvelope], Awaitable[None]]


def _headers(
    raw: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None,
) -> list[tuple[str, bytes]]:
    if raw is None:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    return [(k, v) for k, v in items if v is not None]


@dataclass
class DriftService:
    """The Faust app, its agent and the monitor they feed; built by `create_drift_app`."""

    settings: DriftSettings
    monitor: DriftMonitor
    app: faust.App
    agent: AgentT[Any]
    publish: Publisher

    async def handle(
        self, value: bytes | None, headers: list[tuple[str, bytes]], source: dict[str, Any]
    ) -> DriftCheck:
        """Decode one record and feed it to the monitor; dead-letter what is not a decision."""
        topic = self.settings.decisions_topic
        started = time.perf_counter()
        with tracer.start_as_current_span(
            f"{topic} process",
            context=extract_kafka_context(headers),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ):
            try:
                event = decode(value, CreditDecision)
            except InvalidEvent as exc:
                await self._dead_letter(value, headers, source, exc.reason, exc.detail)
                EVENTS_CONSUMED.labels(self.settings.service_name, topic, "dead_lettered").inc()
                return DriftCheck()
            finally:
                HANDLE_SECONDS.labels(self.settings.service_name, topic).observe(
                    time.perf_counter() - started
                )
            decision = event.payload
            at = (
                decision.decided_at.ToDatetime(tzinfo=UTC)
                if decision.HasField("decided_at")
                else event.occurred_at
            )
            check = self.monitor.observe(
                dict(decision.features),
                float(decision.score),
                at,
                band=int(decision.band) or None,  # UNSPECIFIED: no band to compare
            )
            await self._report(check)
        EVENTS_CONSUMED.labels(self.settings.service_name, topic, "processed").inc()
        return check

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
                self.settings.alerts_topic, alert_envelope(alert, self.settings.service_name)
            )
            ALERTS.labels(alert.subject, version).inc()

    async def _dead_letter(
        self,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        source: dict[str, Any],
        reason: str,
        detail: str,
    ) -> None:
        log.warning("dead-lettering record", extra={"reason": reason, **source})
        envelope = dead_letter_envelope(
            topic=self.settings.decisions_topic,
            partition=int(source.get("partition") or 0),
            offset=int(source.get("offset") or 0),
            key=None,
            value=value,
            headers=headers,
            reason=reason,
            detail=detail,
            group=self.settings.app_id,
            producer=self.settings.service_name,
        )
        await self.publish(dead_letter_topic(self.settings.decisions_topic), envelope)


def create_drift_app(
    settings: DriftSettings,
    reference: DriftReference | None = None,
    publisher: Publisher | None = None,
) -> DriftService:
    """Load the bundle reference (failing clearly when absent) and wire the agent to it."""
    reference = reference or load_reference(settings.bundle_dir)
    monitor = DriftMonitor(
        reference,
        window_size=settings.window_size,
        threshold=settings.psi_alert_threshold,
        evaluate_every=settings.evaluate_every,
    )
    app = create_faust_app(settings, app_id=settings.app_id)

    async def send(topic: str, envelope: EventEnvelope) -> None:
        headers = inject_kafka_headers([("alama-payload-type", envelope.payload_type.encode())])
        # bounded: a missing topic would otherwise block the agent (and shutdown) forever
        async with asyncio.timeout(settings.publish_timeout_s):
            await app.topic(topic).send(
                key=envelope.subject.encode() or None, value=encode(envelope), headers=headers
            )
        EVENTS_PUBLISHED.labels(settings.service_name, topic).inc()

    service: DriftService

    async def watch(stream: StreamT[bytes]) -> AsyncIterator[DriftCheck]:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            yield await service.handle(
                event.value,
                _headers(event.headers),
                {"partition": message.partition, "offset": message.offset},
            )

    agent = app.agent(app.topic(settings.decisions_topic), name="drift.watch")(watch)
    service = DriftService(settings, monitor, app, agent, publisher or send)
    return service
