"""The pipeline at saturation: application event -> decision event -> audit row.

A backlog of applications is published to `loan.applications` as fast as core banking could,
then the clock runs until the audit chain holds a decision row for every one of them.
Throughput is applications over that span; each application's end-to-end latency is its decision
row's `recorded_at` minus the application event's `occurred_at`. The chain is read through the
audit service's reader (services.audit.reader), never its tables.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from services.audit.reader import AuditReader
from services.common.envelope import wrap
from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.settings import InfraSettings
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS


@dataclass(frozen=True)
class PipelineResult:
    applications: int
    decided: int
    publish_s: float
    elapsed_s: float
    applications_per_s: float
    e2e_p50_ms: float
    e2e_p99_ms: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


async def _publish(infra: InfraSettings, applications: list[LoanApplicationSubmitted]) -> None:
    producer = create_producer(infra, client_id="bench-core-banking", linger_ms=20)
    await producer.start()
    try:
        deliveries = [
            await publish(
                producer,
                LOAN_APPLICATIONS,
                wrap(a, producer="core-banking", subject=a.member_id, event_id=a.application_id),
            )
            for a in applications
        ]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def run_pipeline(
    infra: InfraSettings,
    applications: list[LoanApplicationSubmitted],
    *,
    prefix: str,
    audit_schema: str = "audit",
    within: float = 600.0,
) -> PipelineResult:
    """`applications` all carry ids starting with `prefix` (unique to this run)."""
    async with AuditReader.connect(infra.postgres_dsn, audit_schema) as audit:
        started = time.perf_counter()
        await _publish(infra, applications)
        published = time.perf_counter() - started
        decided = 0
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            decided = await audit.count(prefix, CREDIT_DECISIONS)
            if decided >= len(applications):
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        latencies = await audit.decision_latencies_ms(prefix)
    latency = np.array(latencies)
    return PipelineResult(
        applications=len(applications),
        decided=decided,
        publish_s=round(published, 2),
        elapsed_s=round(elapsed, 2),
        applications_per_s=round(decided / elapsed, 1),
        e2e_p50_ms=round(float(np.percentile(latency, 50)), 1) if len(latency) else float("nan"),
        e2e_p99_ms=round(float(np.percentile(latency, 99)), 1) if len(latency) else float("nan"),
    )
