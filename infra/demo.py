"""`make demo` until the main job exists: exercise what is built, say plainly what is not.

Everything shown is measured live against the local servers; nothing is invented.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import trace
from rich.console import Console
from rich.table import Table

from infra import local
from services.common.envelope import wrap
from services.common.kafka import EventConsumer, Route, create_producer, publish
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import (
    LOAN_PRODUCT_DEVELOPMENT,
    LoanApplicationSubmitted,
)
from services.common.redis_store import create_redis
from services.common.settings import ServiceSettings
from services.common.telemetry import setup_tracing
from services.common.topics import TopicSpec, all_topics, ensure_topics

console = Console()

BUNDLE = Path(__file__).resolve().parents[1] / "artifacts" / "bundles" / "current"
MISSING = [
    ("gateway, feature_store and explanation services; the demo running all six", "issue 4"),
    ("simulator, live terminal view, compose stack, Helm charts, benchmarks", "issue 5"),
]


async def round_trip(settings: ServiceSettings, count: int) -> tuple[int, float, str]:
    """Publish `count` applications to a demo topic and consume them back through a group."""
    spec = TopicSpec(f"demo.roundtrip.{uuid.uuid4().hex[:8]}", partitions=3, retention_days=1)
    await ensure_topics(settings.infra.kafka_bootstrap, [spec])
    producer = create_producer(settings.infra, client_id="demo")
    await producer.start()
    tracer = trace.get_tracer("demo")
    started = time.perf_counter()
    with tracer.start_as_current_span("demo submit") as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
        futures = [
            await publish(
                producer,
                spec.name,
                wrap(
                    LoanApplicationSubmitted(
                        application_id=f"demo-{i}",
                        member_id=f"demo-member-{i % 50}",
                        product=LOAN_PRODUCT_DEVELOPMENT,
                        amount_kes=10_000 + 250 * i,
                        term_months=12,
                    ),
                    producer="demo",
                    subject=f"demo-{i}",
                ),
            )
            for i in range(count)
        ]
        await asyncio.gather(*futures)
    await producer.stop()

    seen: set[str] = set()
    traced = 0
    done = asyncio.Event()

    async def handle(event, record) -> None:  # type: ignore[no-untyped-def]
        nonlocal traced
        seen.add(event.event_id)
        if f"{trace.get_current_span().get_span_context().trace_id:032x}" == trace_id:
            traced += 1
        if len(seen) >= count:
            done.set()

    consumer = EventConsumer(
        settings,
        group_id=f"demo-{uuid.uuid4().hex[:8]}",
        routes={spec.name: Route((LoanApplicationSubmitted,), handle)},
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(done.wait(), timeout=60)
    await consumer.stop()
    await task
    elapsed = time.perf_counter() - started
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.infra.kafka_bootstrap)
    await admin.start()
    await admin.delete_topics([spec.name, spec.dead_letter.name])
    await admin.close()
    return traced, elapsed, trace_id


async def stores(settings: ServiceSettings) -> tuple[str, str]:
    redis = create_redis(settings.infra)
    await redis.set("demo:ping", "pong", ex=30)
    redis_answer = (await redis.get("demo:ping")).decode()
    await redis.aclose()
    pool = await create_pool(settings.infra, max_size=1)
    version = await pool.fetchval("SHOW server_version")
    await pool.close()
    return redis_answer, version


def show_bundle() -> None:
    """The promoted model bundle's measured test metrics, or how to make one."""
    if not (BUNDLE / "metrics.json").exists():
        console.print("No model bundle yet: `make train` (PROFILE=quick by default) builds one.")
        return
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    metrics = json.loads((BUNDLE / "metrics.json").read_text())["test"]
    table = Table(title=f"Promoted model bundle {manifest['version']} (test split)")
    for col in ("model", "AUC", "KS", "Brier", "ECE"):
        table.add_column(col)
    for model, m in metrics.items():
        table.add_row(model, *(f"{m[k]:.4f}" for k in ("auc", "ks", "brier", "ece")))
    console.print(table)
    console.print(f"  report: {BUNDLE.resolve() / 'report.md'}")


def main() -> int:
    settings = ServiceSettings(service_name="demo")
    setup_tracing(settings)
    console.rule("[bold]Alama demo: what is built so far")
    rows = local.status()
    local._print_status(rows)
    if not all(r.ready for r in rows):
        console.print("[red]infrastructure is not up; run `make infra-up` and read its message[/]")
        return 1

    topics = Table(title="Kafka topics (services/common/topics.py)")
    for col in ("topic", "partitions", "retention (days)", "cleanup"):
        topics.add_column(col)
    for spec in all_topics():
        topics.add_row(
            spec.name, str(spec.partitions), str(spec.retention_days), spec.cleanup_policy
        )
    console.print(topics)

    count = 2000
    console.print(
        f"publishing {count} LoanApplicationSubmitted envelopes and consuming them back..."
    )
    traced, elapsed, trace_id = asyncio.run(round_trip(settings, count))
    console.print(
        f"  {count} events produced and consumed by a consumer group in {elapsed:.2f}s "
        f"({count / elapsed:,.0f} events/s end to end); {traced} carried trace {trace_id}"
    )
    redis_answer, pg_version = asyncio.run(stores(settings))
    console.print(
        f"  Redis answered {redis_answer!r}; PostgreSQL {pg_version} holds database 'alama'"
    )

    show_bundle()

    missing = Table(title="Not built yet (the demo will run these once they exist)")
    missing.add_column("capability")
    missing.add_column("tracked in")
    for what, where in MISSING:
        missing.add_row(what, where)
    console.print(missing)
    console.print("Stop everything with [bold]make down[/]; run the tests with [bold]make test[/].")
    return 0


if __name__ == "__main__":
    sys.exit(main())
