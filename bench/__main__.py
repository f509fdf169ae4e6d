"""`make bench`: measure the running system and write bench/results/latest.json and latest.md.

    python -m bench [--rates 50,200,500,1000] [--duration 30] [--pipeline 20000]

(a) synchronous `POST /v1/scores` through the gateway at fixed open-loop rates, its knee, and
`POST /v1/scores:batch` of 1,000 applications; (b) the floor: the
ONNX ensemble in process; (c) the pipeline at saturation, application event to audit row. The
servers, a promoted model and the six services are started first, as `make demo` does.
Targets are reported next to the numbers, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from bench.floor import run_floor
from bench.load import open_loop
from bench.pipeline import run_pipeline
from infra import local, supervisor
from infra.demo import BUNDLE, ensure_model
from services.common import topics
from services.common.members import DEV_TENANT
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.settings import InfraSettings, service_port
from simulator.lag import wait_for_group
from simulator.payloads import application_body
from simulator.scenario import build_scenario
from training.contract import LoanBook
from training.sources.synthetic import loan_book_from_world
from training.world import World

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
GATEWAY = f"http://127.0.0.1:{service_port(8080)}"
API_KEY = {"X-API-Key": "dev-partner-key"}
PRODUCTS = {"development": 1, "emergency": 2, "school_fees": 3, "business": 4, "asset": 5}
TARGET_P99_MS_AT_200 = 10.0
TARGET_P99_MS_AT_500 = 25.0
TARGET_KNEE_PER_S = 1000.0
TARGET_BATCH_1000_MS = 50.0
TARGET_PIPELINE_PER_S = 2000.0
KNEE_P99_MS = 100.0  # the knee: the lowest rate whose p99 passes this
BATCH_SIZE, BATCH_REPEATS = 1000, 10


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory_gib = round(kib / 2**20, 1)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def world_of(manifest: dict[str, Any]) -> World:
    from training.pipeline import world_dir
    from training.profiles import get_profile

    return World.load(world_dir(get_profile(str(manifest.get("profile", "quick")))))


async def api_rates(book: LoanBook, rates: list[float], duration: float) -> list[dict[str, Any]]:
    bodies = [application_body(a) for a in build_scenario(book, 3000, "bench").applications]
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=10.0, limits=limits) as client:
        await open_loop(client, "/v1/scores", bodies, rate=50, duration=4, headers=API_KEY)
        results = []
        for rate in rates:
            await settle(InfraSettings())  # the last rate's explanations and audit rows first
            console.print(f"  POST /v1/scores at {rate:g}/s for {duration:g}s")
            result = await open_loop(
                client, "/v1/scores", bodies, rate=rate, duration=duration, headers=API_KEY
            )
            console.print(
                f"    p50 {result.p50_ms} ms, p95 {result.p95_ms} ms, p99 {result.p99_ms} ms,"
                f" errors {result.errors or 0}"
            )
            results.append(result.as_dict())
    return results


async def batch_scores(book: LoanBook, size: int, repeats: int) -> dict[str, Any]:
    """`POST /v1/scores:batch` with `size` fresh applications, `repeats` times in turn."""
    import numpy as np

    scenario = build_scenario(book, size * repeats, f"batch{uuid.uuid4().hex[:6]}")
    bodies = [application_body(a) for a in scenario.applications]
    latencies, errors = [], 0
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30.0) as client:
        for k in range(repeats):
            chunk = bodies[k * size : (k + 1) * size]
            started = time.perf_counter()
            response = await client.post(
                "/v1/scores:batch", json={"applications": chunk}, headers=API_KEY
            )
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
    values = np.array(latencies)
    return {
        "size": size,
        "repeats": repeats,
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "applications_per_s": round(size * repeats / (values.sum() / 1000), 1),
        "errors": errors,
    }


#: Every consumer group downstream of a decision, with the topics it reads.
DOWNSTREAM = {
    "scoring": [topics.LOAN_APPLICATIONS],
    "explanation": [topics.CREDIT_DECISIONS],
    "audit": [topics.LOAN_APPLICATIONS, topics.CREDIT_DECISIONS, topics.CREDIT_EXPLANATIONS],
    "alama-drift": [topics.CREDIT_DECISIONS],
}


async def settle(infra: InfraSettings, within: float = 600.0) -> dict[str, float]:
    """Wait until every downstream group has caught up, so one measurement's backlog (the
    explanations and audit rows of the last phase's decisions) is not counted in the next;
    returns how long each group took."""
    took = {}
    for group, read in DOWNSTREAM.items():
        waited = await wait_for_group(infra, group, read, within=within)
        took[group] = round(waited.seconds, 1)
        if not waited.caught_up:
            console.print(f"  {group} still {waited.lag.total:,} behind after {within:g}s")
    return took


def knee(api: list[dict[str, Any]]) -> float | None:
    """The lowest measured rate whose p99 passed KNEE_P99_MS (None: none did)."""
    passed = [r["rate_per_s"] for r in api if not r["p99_ms"] <= KNEE_P99_MS]
    return min(passed) if passed else None


def pipeline_applications(world: World, n: int, prefix: str) -> list[LoanApplicationSubmitted]:
    rows = world.applications
    return [
        LoanApplicationSubmitted(
            application_id=f"{prefix}{i}",
            tenant_id=DEV_TENANT,  # the synthetic book's tenant
            member_id=str(rows["member_id"].iat[i % len(rows)]),
            sacco_id=str(rows["sacco_id"].iat[i % len(rows)]),
            product=PRODUCTS[str(rows["product"].iat[i % len(rows)])],  # type: ignore[arg-type]
            amount_kes=float(rows["amount_kes"].iat[i % len(rows)]),
            term_months=int(rows["term_months"].iat[i % len(rows)]),
        )
        for i in range(n)
    ]


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Measured {result['measured_at']} on {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gib']} GiB, model `{result['model_version']}`.",
        "",
        "| measurement | p50 | p95 | p99 | throughput | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["api"]:
        lines.append(
            f"| `POST /v1/scores` at {r['rate_per_s']:g}/s, {r['duration_s']:g} s | "
            f"{r['p50_ms']} ms | {r['p95_ms']} ms | {r['p99_ms']} ms | "
            f"{r['achieved_per_s']}/s | {sum(r['errors'].values()) if r['errors'] else 0} |"
        )
    b = result.get("batch")
    if b:
        lines.append(
            f"| `POST /v1/scores:batch` of {b['size']:,}, {b['repeats']} in turn | "
            f"{b['p50_ms']} ms | | {b['p99_ms']} ms | {b['applications_per_s']:,}/s | "
            f"{b['errors']} |"
        )
    f = result["floor"]
    lines.append(
        f"| ONNX ensemble in process, one row | {f['single_row_p50_ms']} ms | | "
        f"{f['single_row_p99_ms']} ms | {f['single_rows_per_s']:,.0f} rows/s | |"
    )
    lines.append(
        f"| ONNX ensemble in process, batch of 1,000 | {f['batch_1000_mean_ms']} ms (mean) | | | "
        f"{f['batch_rows_per_s']:,.0f} rows/s | |"
    )
    p = result["pipeline"]
    lines.append(
        f"| pipeline: {p['applications']:,} applications → decision → audit row | "
        f"{p['e2e_p50_ms']:,} ms | | {p['e2e_p99_ms']:,} ms | {p['applications_per_s']:,}/s | "
        f"{p['applications'] - p['decided']} undecided |"
    )
    t = result["targets"]

    def verdict(key: str) -> str:
        return "met" if t.get(key) else "not met"

    knee_rate = result.get("knee_per_s")
    lines += [
        "",
        f"Knee (the lowest rate whose p99 passed {KNEE_P99_MS:g} ms): "
        + (f"{knee_rate:g}/s" if knee_rate is not None else "beyond every measured rate")
        + ".",
        "",
        f"Targets (reported, not asserted): p99 at most {t['p99_ms_at_200']:g} ms at 200"
        f" requests/s — {verdict('p99_at_200_met')}; at most {TARGET_P99_MS_AT_500:g} ms at 500"
        f" with no errors — {verdict('p99_at_500_met')}; knee at {TARGET_KNEE_PER_S:,.0f}/s or"
        f" beyond — {verdict('knee_met')}; a batch of 1,000 in at most"
        f" {TARGET_BATCH_1000_MS:g} ms — {verdict('batch_met')}; at least"
        f" {t['pipeline_per_s']:,.0f} applications/s through the pipeline —"
        f" {verdict('pipeline_met')}.",
    ]
    return "\n".join(lines) + "\n"


@app.command()
def main(
    rates: Annotated[str, typer.Option(help="comma-separated request rates")] = "50,200,500,1000",
    duration: Annotated[float, typer.Option(help="seconds per rate")] = 30.0,
    pipeline: Annotated[int, typer.Option(help="applications in the pipeline run")] = 20_000,
    out: Annotated[Path, typer.Option(help="result file")] = RESULTS / "latest.json",
) -> None:
    infra = InfraSettings()
    console.rule("bench: servers, model, services")
    local.up()
    manifest = ensure_model()
    supervisor.up()
    world = world_of(manifest)

    console.rule("(b) floor: the ONNX ensemble in process")
    floor = run_floor(BUNDLE, world)
    console.print(floor)

    console.rule("(a) synchronous API at fixed rates")
    book = loan_book_from_world(world)
    api = asyncio.run(api_rates(book, [float(r) for r in rates.split(",")], duration))

    console.rule(f"(a2) POST /v1/scores:batch of {BATCH_SIZE:,}")
    console.print(f"  settled: {asyncio.run(settle(infra))}")
    batch = asyncio.run(batch_scores(book, BATCH_SIZE, BATCH_REPEATS))
    console.print(batch)

    console.rule(f"(c) pipeline at saturation: {pipeline:,} applications")
    console.print(f"  settled: {asyncio.run(settle(infra))}")
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    piped = asyncio.run(
        run_pipeline(infra, pipeline_applications(world, pipeline, prefix), prefix=prefix)
    )
    console.print(piped)

    at_200 = next((r for r in api if r["rate_per_s"] == 200), None)
    at_500 = next((r for r in api if r["rate_per_s"] == 500), None)
    knee_rate = knee(api)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model_version": manifest["version"],
        "api": api,
        "knee_per_s": knee_rate,
        "batch": batch,
        "floor": floor.as_dict(),
        "pipeline": piped.as_dict(),
        "targets": {
            "p99_ms_at_200": TARGET_P99_MS_AT_200,
            "p99_at_200_met": bool(at_200 and at_200["p99_ms"] <= TARGET_P99_MS_AT_200),
            "p99_at_500_met": bool(
                at_500 and at_500["p99_ms"] <= TARGET_P99_MS_AT_500 and not at_500["errors"]
            ),
            "knee_met": knee_rate is None or knee_rate >= TARGET_KNEE_PER_S,
            "batch_met": batch["p99_ms"] <= TARGET_BATCH_1000_MS and not batch["errors"],
            "pipeline_per_s": TARGET_PIPELINE_PER_S,
            "pipeline_met": piped.applications_per_s >= TARGET_PIPELINE_PER_S,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    console.rule("results")
    console.print(markdown(result))
    console.print(f"written to {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    app()
