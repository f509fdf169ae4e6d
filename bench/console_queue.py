"""The console's pages at scale: a tenant with 100,000 decisions and 10,000 open review items,
the queue page and an item page timed through the console's own app (its routes, templates,
sessions and PostgreSQL queries; no network hop and no Kafka).

    python -m bench.console_queue [--decisions 100000] [--open 10000] [--requests 200]

Writes bench/results/console-queue.json and .md. The target (issue 12: the queue page under
300 ms) is reported beside the numbers, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import platform
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from infra import local
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.decisions_pb2 import (
    CreditDecision,
    DecisionBand,
    ReasonCode,
)
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewKind, ReviewOutcome
from services.common.settings import InfraSettings
from services.console.app import Console as ConsoleParts
from services.console.app import create_app
from services.console.people import SESSION_COOKIE, People, Role
from services.console.review import ReviewDesk
from services.console.settings import ConsoleSettings
from services.console.store import ConsoleStore

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
TENANT = "bench-sacco"
TARGET_QUEUE_P95_MS = 300.0
PASSWORD = "bench password long enough"


async def _seed(store: ConsoleStore, decisions: int, open_items: int) -> list[str]:
    """Bulk-load the tenant's decisions; `open_items` of them in band review, waiting."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    decision_rows, item_rows, open_ids = [], [], []
    for i in range(decisions):
        review = i < open_items
        band = DecisionBand.DECISION_BAND_REVIEW if review else rng.choice((1, 3))
        decided_at = now - timedelta(minutes=decisions - i)
        decision = CreditDecision(
            decision_id=f"bench-d-{i}",
            application_id=f"bench-a-{i}",
            member_id=f"bench-m-{i % 20_000}",
            model_version="bench",
            probability_of_default=rng.random() * 0.4,
            score=rng.randint(300, 900),
            band=band,  # type: ignore[arg-type]
            tenant_id=TENANT,
            reasons=[ReasonCode(code="LATE", description="late repayments", contribution=0.3)],
            repayment_attention=[1 / 24] * 24,
        )
        decision.decided_at.FromDatetime(decided_at)
        decision_rows.append(
            (
                decision.decision_id,
                TENANT,
                decision.application_id,
                decision.member_id,
                "bench",
                int(band),
                decision.score,
                decision.probability_of_default,
                decided_at,
                decision.SerializeToString(deterministic=True),
            )
        )
        if review:
            open_ids.append(decision.decision_id)
            item_rows.append(
                (decision.decision_id, TENANT, int(ReviewKind.REVIEW_KIND_BAND), decided_at)
            )
    async with store.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "decisions",
            schema_name=store.s,
            records=decision_rows,
            columns=[
                "decision_id",
                "tenant_id",
                "application_id",
                "member_id",
                "model_version",
                "band",
                "score",
                "probability_of_default",
                "decided_at",
                "payload",
            ],
        )
        await conn.copy_records_to_table(
            "items",
            schema_name=store.s,
            records=item_rows,
            columns=["decision_id", "tenant_id", "kind", "entered_at"],
        )
        await conn.execute(f"ANALYZE {store.s}.decisions; ANALYZE {store.s}.items")
    return open_ids


async def _nothing_published(_outcome: ReviewOutcome) -> None:
    raise RuntimeError("the benchmark settles nothing")


async def _measure(decisions: int, open_items: int, requests: int) -> dict[str, Any]:
    infra = InfraSettings()
    schema = f"console_bench_{uuid.uuid4().hex[:8]}"
    settings = ConsoleSettings(infra=infra, db_schema=schema, cookie_secure=False, dev_mode=True)
    pool = await create_pool(infra, max_size=8)
    store = ConsoleStore(pool, schema)
    try:
        await store.create_schema()
        started = time.perf_counter()
        open_ids = await _seed(store, decisions, open_items)
        seed_s = time.perf_counter() - started
        people = People(store, settings)
        await people.add(
            tenant=TENANT,
            username="bench",
            display_name="Bench",
            role=Role.RISK_OFFICER,
            password=PASSWORD,
        )
        signed = await people.sign_in(TENANT, "bench", PASSWORD)
        assert signed.token is not None

        async def build(_settings: ConsoleSettings) -> ConsoleParts:
            return ConsoleParts(
                settings=settings,
                store=store,
                people=people,
                desk=ReviewDesk(store, settings, _nothing_published),
                explanations=None,
            )

        web = create_app(settings, build=build)
        timings: dict[str, list[float]] = {"queue": [], "queue_page_100": [], "item": []}
        async with web.router.lifespan_context(web):
            transport = httpx.ASGITransport(app=web)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://console",
                cookies={SESSION_COOKIE: signed.token},
            ) as client:
                rng = random.Random(11)
                for path, key in (("/queue", "queue"), ("/queue?page_no=100", "queue_page_100")):
                    for _ in range(5):  # warm the connection pool and the template cache
                        (await client.get(path)).raise_for_status()
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        response = await client.get(path)
                        timings[key].append((time.perf_counter() - t0) * 1000)
                        assert response.status_code == 200, response.text[:200]
                for _ in range(requests):
                    t0 = time.perf_counter()
                    response = await client.get(f"/items/{rng.choice(open_ids)}")
                    timings["item"].append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200, response.text[:200]
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "decisions": decisions,
        "open_items": open_items,
        "requests": requests,
        "seed_seconds": round(seed_s, 1),
        "target_queue_p95_ms": TARGET_QUEUE_P95_MS,
        "pages": {key: _summary(values) for key, values in timings.items()},
    }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def _markdown(result: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {name} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['max_ms']} |"
        for name, s in result["pages"].items()
    )
    queue_p95 = result["pages"]["queue"]["p95_ms"]
    verdict = "met" if queue_p95 < TARGET_QUEUE_P95_MS else "MISSED"
    return (
        f"# Console pages at scale ({result['measured_at']})\n\n"
        f"{result['decisions']:,} decisions, {result['open_items']:,} open review items in one"
        f" tenant; {result['requests']} requests per page, one at a time, through the console's"
        " app (routes, templates, session check, PostgreSQL) without a network hop.\n\n"
        "| page | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Target: the queue page under {TARGET_QUEUE_P95_MS:.0f} ms (p95 {queue_p95} ms:"
        f" {verdict}). Reproduce: `python -m bench.console_queue`.\n"
    )


@app.command()
def main(
    decisions: Annotated[int, typer.Option(min=1)] = 100_000,
    open_items: Annotated[int, typer.Option("--open", min=1)] = 10_000,
    requests: Annotated[int, typer.Option(min=10)] = 200,
) -> None:
    if open_items > decisions:
        raise typer.BadParameter("--open cannot exceed --decisions")
    local.up(echo=lambda _line: None)  # PostgreSQL (and the rest) on this instance's ports
    result = asyncio.run(_measure(decisions, open_items, requests))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console-queue.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "console-queue.md").write_text(_markdown(result))
    console.print(_markdown(result))


if __name__ == "__main__":
    app()
