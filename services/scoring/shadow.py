"""The challenger in shadow: it decides what the champion decides, and nothing acts on it.

While the registry names a `challenger` (other than the champion), every application the champion
has just decided, over gRPC or Kafka, is decided again by the challenger on the same feature rows,
and that decision goes to `credit.decisions.shadow` for the comparison report. None of it is on
the champion's path: the scorer hands each batch to `submit`, which queues it and returns; one
worker scores the queue on a thread of its own and publishes without anyone waiting. When the
queue is full the batch is dropped and counted: shadow data may thin out under overload, the
champion's latency may not grow.

A shadow decision keeps the application, member, tenant and application time of the champion's,
carries the challenger's bundle version, and has an id of its own derived from the champion's
decision id and that version, so a replayed batch gives the same id and nothing downstream can
take it for a real decision.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from aiokafka.structs import RecordMetadata
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from services.common.bundle import ServedBundle
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.vocabulary import BANDS
from services.scoring.metrics import SHADOW_BANDS, SHADOW_DECISIONS, SHADOW_DROPPED
from services.scoring.scorer import Decided, Scorer

log = logging.getLogger(__name__)
tracer = trace.get_tracer("alama.scoring")

#: Fixed forever: changing it would change every shadow decision's id.
SHADOW_NAMESPACE = uuid.UUID("3d0f6b1e-8c2a-5f47-b9e3-a1a3a0c0de03")


def shadow_decision_id(champion_decision_id: str, challenger_version: str) -> str:
    """Same champion decision and challenger, same id; never equal to a real decision's id."""
    return str(uuid.uuid5(SHADOW_NAMESPACE, f"{champion_decision_id}\x1f{challenger_version}"))


class ShadowPublisher(Protocol):
    async def publish_shadow(self, decision: CreditDecision) -> asyncio.Future[RecordMetadata]: ...


@dataclass(frozen=True)
class _Batch:
    decided: list[Decided]
    trace_context: Context  # the champion's span: the shadow work shows in the same trace


def _band(decision: CreditDecision) -> str:
    return BANDS.name_or(decision.band, "unspecified")


class Shadow:
    """Runs `model` (the challenger, None when there is none) beside the scorer's champion."""

    def __init__(
        self, scorer: Scorer, publisher: ShadowPublisher, *, max_pending: int = 64
    ) -> None:
        self.scorer = scorer
        self.publisher = publisher
        self.model: ServedBundle | None = None
        self.queue: asyncio.Queue[_Batch] = asyncio.Queue(max_pending)
        # its own thread: the champion's pool never waits behind the challenger
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring-shadow")
        scorer.shadow = self

    @property
    def active(self) -> bool:
        return self.model is not None

    def submit(self, decided: list[Decided]) -> None:
        """Queue a batch for the challenger, or drop it (counted) when the queue is full."""
        try:
            self.queue.put_nowait(_Batch(decided, otel_context.get_current()))
        except asyncio.QueueFull:
            SHADOW_DROPPED.labels("queue_full").inc(len(decided))

    async def run(self) -> None:
        """Shadow queued batches until cancelled; a batch that fails is counted, not retried."""
        while True:
            batch = await self.queue.get()
            try:
                await self.shadow(batch.decided, batch.trace_context)
            except Exception:
                SHADOW_DROPPED.labels("failed").inc(len(batch.decided))
                log.exception("the challenger could not score a batch")
            finally:
                self.queue.task_done()

    async def shadow(self, decided: list[Decided], trace_context: Context | None = None) -> int:
        """Decide `decided` with the challenger and publish; returns how many were queued."""
        model = self.model
        if model is None:  # the challenger went away while the batch waited
            SHADOW_DROPPED.labels("no_challenger").inc(len(decided))
            return 0
        # decisions the challenger itself made as champion (it was promoted meanwhile)
        decided = [d for d in decided if d.decision.model_version != model.version]
        if not decided:
            return 0
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.pool, self.scorer.rescore, decided, model)
        token = otel_context.attach(trace_context or otel_context.get_current())
        published = 0
        try:
            with tracer.start_as_current_span(
                "shadow score", attributes={"alama.challenger": model.version}
            ):
                for item, result in zip(decided, results, strict=True):
                    if result is None:
                        SHADOW_DROPPED.labels("unscoreable").inc()
                        continue
                    champion_id = item.decision.decision_id
                    result.decision_id = shadow_decision_id(champion_id, model.version)
                    delivery = await self.publisher.publish_shadow(result)
                    bands = (_band(item.decision), _band(result))
                    delivery.add_done_callback(functools.partial(_delivered, bands=bands))
                    published += 1
        finally:
            otel_context.detach(token)
        return published

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _delivered(delivery: asyncio.Future[RecordMetadata], bands: tuple[str, str]) -> None:
    if delivery.cancelled() or delivery.exception() is not None:
        SHADOW_DROPPED.labels("undelivered").inc()
        return
    SHADOW_DECISIONS.inc()
    SHADOW_BANDS.labels(*bands).inc()
