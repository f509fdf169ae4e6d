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
from bench.load import load_session, score_loop
from bench.mixed import TARGET_INGEST_PER_S, TARGET_LAG_ZERO_S, ingestion, mixed_load
from bench.pipeline import run_pipeline
from bench.procs import Alone, ProcessMeter, python_speed_s, system_meter
from infra import local, supervisor
from infra.demo import BUNDLE, ensure_model
from services.common import topics
from services.common.members import DEV_TENANT
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.settings import InfraSettings, service_port
from services.common.vocabulary import PRODUCTS
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
TARGET_P99_MS_AT_200 = 10.0
TARGET_P99_MS_AT_500 = 25.0
TARGET_KNEE_PER_S = 1000.0
TARGET_BATCH_1000_MS = 50.0
TARGET_PIPELINE_PER_S = 2000.0
TARGET_PIPELINE_P99_MS = 500.0  # application event to audit row
TARGET_P99_OVER_MLSERVER = 1.2  # Alama's full path p99 / MLServer's model-only p99, 200 and 500/s
KNEE_P99_MS = 100.0  # the knee: the lowest rate whose p99 passes this
BATCH_SIZE, BATCH_REPEATS = 1000, 10
BENCH_ENV = {"ALAMA_GATEWAY_RATE_LIMIT_DEFAULT": "100000/second"}


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


def start_system() -> dict[str, Any]:
    """The servers, the promoted model (its manifest is returned) and every service, the gateway
    with the tenant's rate limit above the rates measured (as a SACCO sets its own): the
    limiter is still consulted on every request, it just never refuses."""
    local.up()
    manifest = ensure_model()
    supervisor.down(["gateway"], echo=lambda _line: None)
    supervisor.up(env=BENCH_ENV)
    return manifest


def world_of(manifest: dict[str, Any]) -> World:
    from training.pipeline import world_dir
    from training.profiles import get_profile

    return World.load(world_dir(get_profile(str(manifest.get("profile", "quick")))))


def api_bodies(book: LoanBook) -> list[dict[str, Any]]:
    """Request bodies of 3,000 of the book's applications, cycled by every rate; each request
    gets its own application id (`bench.load.score_loop`), so none is a replay."""
    return [application_body(a) for a in build_scenario(book, 3000, "bench").applications]


async def api_rates(
    book: LoanBook, rates: list[float], duration: float, meter: ProcessMeter
) -> list[dict[str, Any]]:
    """Each rate in turn; with the CPU each process spent per request that reached the
    gateway, from the rate's start until every downstream group caught up with it."""
    bodies = api_bodies(book)
    async with load_session(GATEWAY) as client:
        await score_loop(client, bodies, rate=50, duration=4, headers=API_KEY)
        results = []
        await settle(InfraSettings())
        for rate in rates:
            console.print(f"  POST /v1/scores at {rate:g}/s for {duration:g}s")
            before = meter.snapshot()
            result = await score_loop(client, bodies, rate=rate, duration=duration, headers=API_KEY)
            # the explanations, audit rows and drift windows these decisions caused count too
            await settle(InfraSettings())
            cpu = meter.per_request(before, meter.snapshot(), result.reached)
            console.print(
                f"    p50 {result.p50_ms} ms, p95 {result.p95_ms} ms, p99 {result.p99_ms} ms,"
                f" errors {result.errors or 0}; CPU ms per request {cpu}"
            )
            results.append(result.as_dict() | {"cpu_ms_per_request": cpu})
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
    # they keep every decision too (live performance; the console's queue and oversight pages):
    # a backlog of theirs would be measured as load on whatever runs next (MLServer included)
    "outcomes": [topics.CREDIT_DECISIONS],
    "console": [topics.CREDIT_DECISIONS, topics.LOAN_APPLICATIONS],
}


#: the Faust workers, with the metrics-port setting (and default) their `/readyz` is served on
FAUST_WORKERS = {"feature_store": 9102, "drift": 9106}


async def workers_ready(within: float = 600.0) -> float:
    """Wait until every running Faust worker (replicas too) answers `/readyz`: a worker just
    started replays its tables' changelogs first, and a burst measured meanwhile counts that
    replay (a tenth of one profile's samples were its JSON decoding); returns the seconds."""
    began = time.monotonic()
    urls = []
    for name, default in FAUST_WORKERS.items():
        for spec in [supervisor.BY_NAME[name]] + [
            supervisor.replica(name, int(r.rsplit("-", 1)[1]))
            for r in supervisor.running_replicas(name)
        ]:
            if supervisor.pid_of(spec.name) is None:
                continue
            key = f"ALAMA_{name.upper()}_METRICS_PORT"
            port = spec.env.get(key) or os.environ.get(key) or str(service_port(default))
            urls.append(f"http://127.0.0.1:{port}/readyz")
    async with httpx.AsyncClient(timeout=3.0) as http:
        for url in urls:
            while time.monotonic() - began < within:
                try:
                    if (await http.get(url)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(1.0)
            else:
                console.print(f"  {url} not ready after {within:g}s")
    return round(time.monotonic() - began, 1)


async def settle(infra: InfraSettings, within: float = 600.0) -> dict[str, float]:
    """Wait until every Faust worker is ready and every downstream group has caught up, so one
    measurement's backlog (the explanations and audit rows of the last phase's decisions) is not
    counted in the next; returns how long each took."""
    took = {"faust workers ready": await workers_ready(within)}
    for group, read in DOWNSTREAM.items():
        waited = await wait_for_group(infra, group, read, within=within)
        took[group] = round(waited.seconds, 1)
        if not waited.caught_up:
            console.print(f"  {group} still {waited.lag.total:,} behind after {within:g}s")
    return took


def side_by_side(world: World, rates: list[float], duration: float) -> dict[str, Any]:
    """MLServer at the same rates on one-row requests of real applications' features; the
    reason instead when its environment is missing or it does not start (reported, not hidden)."""
    from bench import mlserver
    from bench.floor import world_inputs
    from services.common.bundle import load_bundle

    columns = load_bundle(BUNDLE).columns
    rows = world_inputs(world).tabular[:3000][:, columns]
    meter = ProcessMeter(
        {"mlserver": mlserver.pid_of_running, "load generator": Alone(lambda: [os.getpid()])}
    )
    try:
        with mlserver.running(BUNDLE) as url:
            measured: list[dict[str, Any]] = []
            for rate in rates:
                before = meter.snapshot()
                [result] = asyncio.run(
                    mlserver.mlserver_rates(url, rows, [rate], duration, warm=not measured)
                )
                cpu = meter.per_request(before, meter.snapshot(), result.reached)
                console.print(
                    f"  MLServer at {result.rate_per_s:g}/s: p50 {result.p50_ms} ms,"
                    f" p99 {result.p99_ms} ms, errors {result.errors or 0}; CPU ms/request {cpu}"
                )
                measured.append(result.as_dict() | {"cpu_ms_per_request": cpu})
    except mlserver.MLServerUnavailable as exc:
        console.print(f"  [yellow]MLServer not measured[/]: {exc}")
        return {"unavailable": str(exc)}
    return {"rates": measured, "model": "the bundle's LightGBM (gbm.txt), one row per request"}


def mlserver_ratios(api: list[dict[str, Any]], side: dict[str, Any]) -> dict[str, float | None]:
    """Alama's p99 over MLServer's at each rate both measured (None where one answered nothing)."""
    theirs = {r["rate_per_s"]: r["p99_ms"] for r in side.get("rates", [])}
    out: dict[str, float | None] = {}
    for r in api:
        other = theirs.get(r["rate_per_s"])
        if other is None:
            continue
        ok = other == other and r["p99_ms"] == r["p99_ms"] and other > 0  # NaN: nothing answered
        out[f"{r['rate_per_s']:g}"] = round(r["p99_ms"] / other, 2) if ok else None
    return out


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
            product=PRODUCTS.value(str(rows["product"].iat[i % len(rows)])),  # type: ignore[arg-type]
            amount_kes=float(rows["amount_kes"].iat[i % len(rows)]),
            term_months=int(rows["term_months"].iat[i % len(rows)]),
        )
        for i in range(n)
    ]


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    speed = m.get("python_speed_s")
    pace = (
        f" ten million Python additions in {speed[0]} s before the run and {speed[1]} s after"
        " (one core's speed, which varies from hour to hour),"
        if speed
        else ""
    )
    lines = [
        f"Measured {result['measured_at']} on {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gib']} GiB,{pace} model `{result['model_version']}`.",
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
    for r in result.get("mlserver", {}).get("rates", []):
        lines.append(
            f"| MLServer, LightGBM only, at {r['rate_per_s']:g}/s, {r['duration_s']:g} s | "
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
    mixed = result.get("mixed")
    if mixed:
        for r in mixed["api"]:
            lines.append(
                f"| `POST /v1/scores` at {r['rate_per_s']:g}/s with webhooks at"
                f" {mixed['webhook_transactions_per_s']:,.0f} transactions/s | {r['p50_ms']} ms |"
                f" {r['p95_ms']} ms | {r['p99_ms']} ms | {r['achieved_per_s']}/s |"
                f" {sum(r['errors'].values()) if r['errors'] else 0} |"
            )
    ingested = result.get("ingestion")
    if ingested:
        lines.append(
            f"| ingestion: {ingested['transactions']:,} webhook transactions → Feast online |"
            f" | | | {ingested['transactions_per_s']:,}/s |"
            f" {ingested['refused_deliveries']} deliveries refused"
            f" ({ingested.get('retried_deliveries', 0)} retries) |"
        )
    for p in result.get("pipelines") or [result["pipeline"]]:
        replicas = p.get("scoring_replicas", 1)
        alive = p.get("scoring_replicas_alive", replicas)
        died = f" (only {alive} still running at its end)" if alive < replicas else ""
        lines.append(
            f"| pipeline: {p['applications']:,} applications → decision → audit row,"
            f" {replicas} scoring replica{'s' if replicas > 1 else ''}{died} | "
            f"{p['e2e_p50_ms']:,} ms | | {p['e2e_p99_ms']:,} ms | {p['applications_per_s']:,}/s"
            f" | {p['applications'] - p['decided']} undecided |"
        )
    lines += cpu_table(result["api"])
    if mixed:
        lines += [
            "",
            f"Mixed load: {mixed['webhooks']['transactions_accepted']:,} webhook transactions"
            f" accepted; the feature store's lag peaked at"
            f" {max((lag for _t, lag in mixed['feature_store_lag']), default=0):,} and was 0 "
            + (
                f"{mixed['lag_zero_after_s']:g} s after the last webhook"
                if mixed["lag_zero_after_s"] is not None
                else "NOT within 300 s of the last webhook"
            )
            + ".",
        ]
    cpu_pipeline = [p for p in result.get("pipelines", []) if p.get("cpu_ms_per_application")]
    if cpu_pipeline:
        lines += ["", "Pipeline CPU milliseconds per application, by process:", ""]
        groups = list(cpu_pipeline[0]["cpu_ms_per_application"])
        lines += [
            "| scoring replicas | " + " | ".join(groups) + " |",
            "| --- |" + " ---: |" * len(groups),
        ]
        for p in cpu_pipeline:
            cells = " | ".join(f"{p['cpu_ms_per_application'].get(g, 0.0):g}" for g in groups)
            lines.append(f"| {p['scoring_replicas']} | {cells} |")
    side = result.get("mlserver", {})
    if side.get("unavailable"):
        lines += ["", f"MLServer was not measured: {side['unavailable']}."]
    elif side.get("rates"):
        ratios = result.get("p99_over_mlserver", {})
        mk = result.get("mlserver_knee_per_s")
        lines += [
            "",
            "Alama's p99 over MLServer's (model only) at the same rate: "
            + ", ".join(
                f"{rate}/s {'n/a' if v is None else f'{v:g}x'}" for rate, v in ratios.items()
            )
            + "; MLServer's knee: "
            + (f"{mk:g}/s" if mk is not None else "beyond every measured rate")
            + ".",
        ]
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
        f" {verdict('pipeline_met')}"
        + (
            f"; pipeline p99 at most {t['pipeline_p99_ms']:g} ms — {verdict('pipeline_p99_met')}"
            f"; at least {t['ingest_per_s']:,.0f} transactions/s webhook to Feast —"
            f" {verdict('ingest_met')}; feature store lag 0 within {t['lag_zero_s']:g} s of the"
            f" last webhook — {verdict('lag_zero_met')}"
            if "ingest_per_s" in t
            else ""
        )
        + f"; p99 at most {TARGET_P99_OVER_MLSERVER:g}x MLServer's at"
        f" 200 and 500/s — {verdict('p99_over_mlserver_met')}.",
    ]
    return "\n".join(lines) + "\n"


def cpu_table(api: list[dict[str, Any]]) -> list[str]:
    """CPU milliseconds per request by process, one row per rate (where measured)."""
    measured = [r for r in api if r.get("cpu_ms_per_request")]
    if not measured:
        return []
    groups = [g for g in measured[0]["cpu_ms_per_request"] if g != "total"] + ["total"]
    lines = [
        "",
        "CPU milliseconds per request, by process (from /proc, the rate's start until every"
        " downstream group caught up; on 2 cores, 2,000 CPU ms per second is the whole machine):",
        "",
        "| rate | " + " | ".join(groups) + " |",
        "| --- |" + " ---: |" * len(groups),
    ]
    for r in measured:
        cells = " | ".join(f"{r['cpu_ms_per_request'].get(g, 0.0):g}" for g in groups)
        lines.append(f"| {r['rate_per_s']:g}/s | {cells} |")
    return lines


@app.command()
def main(
    rates: Annotated[str, typer.Option(help="comma-separated request rates")] = "50,200,500,1000",
    duration: Annotated[float, typer.Option(help="seconds per rate")] = 30.0,
    pipeline: Annotated[int, typer.Option(help="applications in the pipeline run")] = 20_000,
    webhooks: Annotated[
        float, typer.Option(help="webhook transactions/s beside the mixed-load API rates")
    ] = 1000.0,
    ingest: Annotated[
        int, typer.Option(help="transactions in the webhook-to-Feast ingestion burst")
    ] = 100_000,
    out: Annotated[Path, typer.Option(help="result file")] = RESULTS / "latest.json",
) -> None:
    infra = InfraSettings()
    speed_before = python_speed_s()
    console.rule("bench: servers, model, services")
    manifest = start_system()
    world = world_of(manifest)

    console.rule("(b) floor: the ONNX ensemble in process")
    floor = run_floor(BUNDLE, world)
    console.print(floor)

    console.rule("(a) synchronous API at fixed rates")
    book = loan_book_from_world(world)
    rate_list = [float(r) for r in rates.split(",")]
    meter = system_meter()
    api = asyncio.run(api_rates(book, rate_list, duration, meter))

    console.rule("(a1) MLServer serving the bundle's LightGBM (model only), same rates")
    side = side_by_side(world, rate_list, duration)

    console.rule(f"(a2) POST /v1/scores:batch of {BATCH_SIZE:,}")
    console.print(f"  settled: {asyncio.run(settle(infra))}")
    batch = asyncio.run(batch_scores(book, BATCH_SIZE, BATCH_REPEATS))
    console.print(batch)

    console.rule(f"(a3) mixed: the API rates again, webhooks at {webhooks:,.0f} transactions/s")
    console.print(f"  settled: {asyncio.run(settle(infra))}")
    run = uuid.uuid4().hex[:8]
    mixed = asyncio.run(
        mixed_load(
            infra,
            GATEWAY,
            api_bodies(book),
            API_KEY,
            book.mobile_money,
            rates=rate_list,
            duration=duration,
            webhook_per_s=webhooks,
            run=f"mixed{run}",
        )
    )
    for r in mixed["api"]:
        console.print(
            f"  with webhooks, {r['rate_per_s']:g}/s: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms,"
            f" errors {r['errors'] or 0}"
        )
    console.print(
        f"  webhooks {mixed['webhooks']}; feature store lag 0 {mixed['lag_zero_after_s']} s"
        " after the last one"
    )

    console.rule(f"(a4) ingestion: {ingest:,} transactions through the webhook route to Feast")
    console.print(f"  settled: {asyncio.run(settle(infra))}")
    ingested = asyncio.run(
        ingestion(infra, GATEWAY, book.mobile_money, transactions=ingest, run=f"ingest{run}")
    )
    console.print(ingested)

    pipelines: list[dict[str, Any]] = []
    for replicas in (1, 3):
        console.rule(
            f"(c) pipeline at saturation: {pipeline:,} applications, {replicas} scoring"
            f" replica{'s' if replicas > 1 else ''}"
        )
        supervisor.scale("scoring", replicas)
        console.print(f"  settled: {asyncio.run(settle(infra))}")
        prefix = f"bench{uuid.uuid4().hex[:8]}-"
        before = meter.snapshot()
        piped = asyncio.run(
            run_pipeline(infra, pipeline_applications(world, pipeline, prefix), prefix=prefix)
        )
        asyncio.run(settle(infra))
        cpu = meter.per_request(before, meter.snapshot(), pipeline)
        # a replica that stopped mid-run leaves a measurement of fewer replicas than asked
        alive = (supervisor.pid_of("scoring") is not None) + len(
            supervisor.running_replicas("scoring")  # only those running
        )
        console.print(piped, f"CPU ms per application {cpu}; scoring replicas running {alive}")
        pipelines.append(
            piped.as_dict()
            | {
                "scoring_replicas": replicas,
                "scoring_replicas_alive": alive,
                "cpu_ms_per_application": cpu,
            }
        )
    supervisor.scale("scoring", 1)
    piped_best = max(pipelines, key=lambda p: p["applications_per_s"])

    at_200 = next((r for r in api if r["rate_per_s"] == 200), None)
    at_500 = next((r for r in api if r["rate_per_s"] == 500), None)
    knee_rate = knee(api)
    ratios = mlserver_ratios(api, side)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"python_speed_s": [speed_before, python_speed_s()]},
        "model_version": manifest["version"],
        "api": api,
        "knee_per_s": knee_rate,
        "mlserver": side,
        "mlserver_knee_per_s": knee(side["rates"]) if side.get("rates") else None,
        "p99_over_mlserver": ratios,
        "batch": batch,
        "floor": floor.as_dict(),
        "mixed": mixed,
        "ingestion": ingested,
        "pipeline": pipelines[0],
        "pipelines": pipelines,
        "targets": {
            "p99_ms_at_200": TARGET_P99_MS_AT_200,
            "p99_at_200_met": bool(at_200 and at_200["p99_ms"] <= TARGET_P99_MS_AT_200),
            "p99_at_500_met": bool(
                at_500 and at_500["p99_ms"] <= TARGET_P99_MS_AT_500 and not at_500["errors"]
            ),
            "knee_met": knee_rate is None or knee_rate >= TARGET_KNEE_PER_S,
            "batch_met": batch["p99_ms"] <= TARGET_BATCH_1000_MS and not batch["errors"],
            "pipeline_per_s": TARGET_PIPELINE_PER_S,
            "pipeline_met": piped_best["applications_per_s"] >= TARGET_PIPELINE_PER_S,
            "pipeline_p99_ms": TARGET_PIPELINE_P99_MS,
            "pipeline_p99_met": piped_best["e2e_p99_ms"] <= TARGET_PIPELINE_P99_MS,
            "ingest_per_s": TARGET_INGEST_PER_S,
            "ingest_met": ingested["caught_up"]
            and ingested["transactions_per_s"] >= TARGET_INGEST_PER_S,
            "lag_zero_s": TARGET_LAG_ZERO_S,
            "lag_zero_met": mixed["lag_zero_after_s"] is not None
            and mixed["lag_zero_after_s"] <= TARGET_LAG_ZERO_S,
            "p99_over_mlserver_max": TARGET_P99_OVER_MLSERVER,
            "p99_over_mlserver_met": bool(ratios)
            and all(
                (ratio := ratios.get(rate)) is not None and ratio <= TARGET_P99_OVER_MLSERVER
                for rate in ("200", "500")
            ),
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
