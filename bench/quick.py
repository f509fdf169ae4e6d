"""`make bench-quick`: the synchronous path alone, in minutes, for an A/B of one change.

    python -m bench.quick [--rates 50,100,200] [--seconds 30]

`make bench` takes most of an hour; a change to the hot path wants its before and after on the
same machine within minutes. This starts the system as `make bench` does (servers, the promoted
model, every service), then for each rate runs `POST /v1/scores` open loop with the same
generator and bodies as `make bench`, and reports p50/p95/p99, errors, and each process's CPU
per request in the steady middle of the rate (from its second third to its end, so neither the
ramp nor the downstream catch-up afterwards is counted; idle consumers' polling is, as it is in
production). Written to bench/results/quick.json and quick.md, with the machine's details and
a single-core Python speed reference, since these machines differ by threefold.
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

from bench.load import RateResult, load_session, open_loop
from bench.procs import system_meter

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"


def python_speed_s() -> float:
    """Seconds for ten million additions in a Python loop: how fast one core is here."""
    began = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - began, 2)


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
        await open_loop(client, "/v1/scores", bodies, rate=50, duration=3, headers=API_KEY)
        await settle(InfraSettings())
        for rate in rates:
            console.print(f"{rate:g} requests/s for {seconds:g} s")
            loading = asyncio.create_task(
                open_loop(
                    client, "/v1/scores", bodies, rate=rate, duration=seconds, headers=API_KEY
                )
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
    return "\n".join(lines) + "\n"


@app.command()
def main(
    rates: Annotated[str, typer.Option(help="comma-separated requests per second")] = "50,100,200",
    seconds: Annotated[float, typer.Option(help="seconds per rate")] = 30.0,
    out: Annotated[Path, typer.Option(help="results folder")] = RESULTS,
) -> None:
    from bench.__main__ import BENCH_ENV, machine
    from infra import local, supervisor
    from infra.demo import ensure_model

    local.up()
    manifest = ensure_model()
    supervisor.down(["gateway"], echo=lambda _line: None)
    supervisor.up(env=BENCH_ENV)
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "python_speed_s": python_speed_s(),
        "model_version": manifest["version"],
        "rates": asyncio.run(_rates([float(r) for r in rates.split(",")], seconds)),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "quick.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "quick.md").write_text(markdown(report))
    console.print(markdown(report))


if __name__ == "__main__":
    app()
