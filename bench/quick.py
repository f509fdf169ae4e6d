"""`make bench-quick`: the synchronous path alone, in minutes, for an A/B of one change.

    python -m bench.quick [--rates 50,100,200] [--seconds 30]

`make bench` takes most of an hour; a change to the hot path wants its before and after on the
same machine within minutes. This starts the system as `make bench` does (servers, the promoted
model, every service), then for each rate runs `POST /v1/scores` open loop with the same
generator and bodies as `make bench`, and reports p50/p95/p99, errors, and each process's CPU
per request in the steady middle of the rate (from its second third to its end, so neither the
ramp nor the downstream catch-up afterwards is counted; idle consumers' polling is, as it is in
production); then the audit chain's append alone (5,000 decision rows in batches of 250, sealed,
written and verified in a scratch schema); then, unless `--ingest 0`, a burst of the book's
mobile-money transactions through the webhook route, timed until the feature store has consumed
them all (webhook to Feast's online store, as `make bench` measures it). Written to
bench/results/quick.json and quick.md, with
the machine's details and a single-core Python speed reference, since these machines differ by
threefold.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench.load import RateResult, load_session, score_loop
from bench.procs import python_speed_s, system_meter

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"


async def _rates(rates: list[float], seconds: float) -> list[dict[str, Any]]:
    from bench.__main__ import API_KEY, GATEWAY, api_bodies, settle, world_of
    from infra.demo import BUNDLE
    from services.common.settings import InfraSettings
    from training.sources.synthetic import loan_book_from_world

    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    bodies = api_bodies(loan_book_from_world(world_of(manifest)))
    meter = system_meter()
    results = []
    async with load_session(GATEWAY) as client:
        await score_loop(client, bodies, rate=50, duration=3, headers=API_KEY)
        await settle(InfraSettings())
        for rate in rates:
            console.print(f"{rate:g} requests/s for {seconds:g} s")
            loading = asyncio.create_task(
                score_loop(client, bodies, rate=rate, duration=seconds, headers=API_KEY)
            )
            await asyncio.sleep(seconds / 3)
            before, began = meter.snapshot(), time.monotonic()
            result: RateResult = await loading
            after, window = meter.snapshot(), time.monotonic() - began
            served = rate * window
            cpu = meter.per_request(before, after, round(served))
            await settle(InfraSettings())
            results.append({"api": result.as_dict(), "cpu_ms_per_request": cpu})
    return results


async def _ingestion(manifest: dict[str, Any], transactions: int) -> dict[str, Any]:
    from bench.__main__ import GATEWAY, settle, world_of
    from bench.mixed import ingestion
    from services.common.settings import InfraSettings
    from training.sources.synthetic import loan_book_from_world

    infra = InfraSettings()
    book = loan_book_from_world(world_of(manifest))
    console.print(f"{transactions:,} transactions through the webhook route to Feast")
    await settle(infra)
    run = datetime.now(UTC).strftime("%H%M%S")
    meter = system_meter()
    before = meter.snapshot()
    result = await ingestion(
        infra, GATEWAY, book.mobile_money, transactions=transactions, run=f"quick{run}"
    )
    # every process's CPU from the first delivery until the feature store had consumed the
    # last, per transaction accepted
    result["cpu_ms_per_transaction"] = meter.per_request(
        before, meter.snapshot(), int(result["accepted"])
    )
    return result


async def audit_append(rows: int = 5000, batch: int = 250) -> dict[str, Any]:
    """The audit chain's append alone: decision drafts sealed and written in batches (as the
    consumer flushes a poll) into a scratch schema of the local PostgreSQL, then verified."""
    import uuid

    import asyncpg

    from services.audit.chain import draft_from_event
    from services.audit.settings import AuditSettings
    from services.audit.store import AuditStore
    from services.common.envelope import decode, encode, wrap
    from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, ReasonCode
    from services.common.settings import InfraSettings

    def draft() -> Any:
        decision = CreditDecision(
            decision_id=str(uuid.uuid4()),
            application_id=str(uuid.uuid4()),
            member_id="member-0001",
            model_version="bench",
            reasons=[ReasonCode(code=f"R{i}", description="x" * 80) for i in range(4)],
            repayment_attention=[0.1] * 24,
            mobile_money_attention=[0.1] * 13,
            contributions=[0.1] * 40,
        )
        decision.decided_at.GetCurrentTime()
        envelope = wrap(decision, producer="bench", event_id=decision.decision_id)
        return draft_from_event(decode(encode(envelope), CreditDecision), "credit.decisions")

    schema = "bench_" + uuid.uuid4().hex[:8]
    pool = await asyncpg.create_pool(InfraSettings().postgres_dsn, min_size=1, max_size=2)
    try:
        store = AuditStore(pool, schema, mac_key=b"bench-audit-append-key-32-bytes!")
        await store.migrate(writer=AuditSettings(dev_mode=True).writer_user)
        batches = [[draft() for _ in range(batch)] for _ in range(rows // batch)]
        began = time.perf_counter()
        for drafts in batches:
            await store.append(drafts)
        took = time.perf_counter() - began
        verified = (await store.verify()).ok
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
    return {
        "rows": rows,
        "batch": batch,
        "ms_per_row": round(took / rows * 1e3, 3),
        "rows_per_s": round(rows / took),
        "verified": verified,
    }


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"Measured {report['measured_at']} on {machine['cores']} cores ({machine['cpu']}),"
        f" ten million Python additions in {report['python_speed_s']} s,"
        f" model `{report['model_version']}`; `python -m bench.quick` (`make bench-quick`).",
        "",
        "| rate | p50 | p95 | p99 | errors |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for row in report["rates"]:
        api = row["api"]
        errors = ", ".join(f"{k} {v}" for k, v in api["errors"].items()) or "0"
        lines.append(
            f"| {api['rate_per_s']:g}/s | {api['p50_ms']} ms | {api['p95_ms']} ms"
            f" | {api['p99_ms']} ms | {errors} |"
        )
    names = list(report["rates"][0]["cpu_ms_per_request"]) if report["rates"] else []
    lines += [
        "",
        "CPU milliseconds per request in the steady part of each rate, by process:",
        "",
        "| rate | " + " | ".join(names) + " |",
        "| ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for row in report["rates"]:
        cpu = row["cpu_ms_per_request"]
        lines.append(
            f"| {row['api']['rate_per_s']:g}/s | "
            + " | ".join(str(cpu.get(n, "")) for n in names)
            + " |"
        )
    ingest = report.get("ingestion")
    if ingest:
        lines += [
            "",
            f"Webhook to Feast: {ingest['accepted']:,} transactions posted in"
            f" {ingest['posted_s']} s, all consumed and pushed after {ingest['elapsed_s']} s:"
            f" {ingest['transactions_per_s']:,} transactions/s (caught up: {ingest['caught_up']};"
            f" {ingest.get('retried_deliveries', 0)} deliveries sent again after a 503,"
            f" {ingest['refused_deliveries']} refused in the end).",
        ]
        spent = ingest.get("cpu_ms_per_transaction") or {}
        if spent:
            lines.append(
                "CPU milliseconds per transaction, by process: "
                + ", ".join(f"{name} {ms}" for name, ms in spent.items() if ms >= 0.01)
                + "."
            )
    audit = report.get("audit_append")
    if audit:
        lines += [
            "",
            f"The audit chain's append alone: {audit['rows']:,} decision rows in batches of"
            f" {audit['batch']}, sealed and written to PostgreSQL: {audit['ms_per_row']} ms per"
            f" row ({audit['rows_per_s']:,} rows/s), chain verified: {audit['verified']}.",
        ]
    return "\n".join(lines) + "\n"


@app.command()
def main(
    rates: Annotated[str, typer.Option(help="comma-separated requests per second")] = "50,100,200",
    seconds: Annotated[float, typer.Option(help="seconds per rate")] = 30.0,
    ingest: Annotated[int, typer.Option(help="transactions in the webhook burst; 0: none")] = 20000,
    out: Annotated[Path, typer.Option(help="results folder")] = RESULTS,
) -> None:
    from bench.__main__ import machine, start_system

    manifest = start_system()
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "python_speed_s": python_speed_s(),
        "model_version": manifest["version"],
        "rates": asyncio.run(_rates([float(r) for r in rates.split(",")], seconds)),
        "audit_append": asyncio.run(audit_append()),
        "ingestion": asyncio.run(_ingestion(manifest, ingest)) if ingest else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "quick.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "quick.md").write_text(markdown(report))
    console.print(markdown(report))


if __name__ == "__main__":
    app()
