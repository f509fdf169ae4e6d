"""`make soak`: a long steady run of `POST /v1/scores`, minute by minute, to find creep.

    python -m bench.soak [--minutes 30] [--rate 200]

A benchmark of 30 s shows speed; half an hour at a steady rate shows what a day does: a p99
that drifts up (a queue, a cache or a table that grows) and processes whose memory keeps
climbing. Each minute is its own open-loop run (`bench.load.score_loop`); after it, every
process's resident memory is read (`bench.procs`). The report compares the last five minutes
with the first five after a warm-up minute: p99 drift (target at most 10 %) and memory growth
per process. Results in bench/results/soak.{json,md}. Not part of `make bench` (it takes the
minutes it is given).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from bench.load import load_session, score_loop
from bench.procs import ProcessMeter, system_meter

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P99_DRIFT = 0.10
WINDOW = 5  # minutes compared at each end


async def soak(
    gateway: str,
    bodies: list[dict[str, Any]],
    headers: dict[str, str],
    meter: ProcessMeter,
    *,
    minutes: int,
    rate: float,
) -> list[dict[str, Any]]:
    out = []
    async with load_session(gateway) as client:
        for minute in range(1, minutes + 1):
            result = await score_loop(client, bodies, rate=rate, duration=60.0, headers=headers)
            memory = meter.memory_mib()
            errors = sum(result.errors.values())
            console.print(
                f"  minute {minute:>3}: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms,"
                f" {result.achieved_per_s}/s, errors {errors}; RSS MiB {memory}"
            )
            out.append({"minute": minute, **result.as_dict(), "rss_mib": memory})
    return out


def summary(minutes: list[dict[str, Any]]) -> dict[str, Any]:
    """p99 drift and memory growth between the first and the last `WINDOW` minutes after the
    first minute (warm-up); a short run compares what it has."""
    steady = minutes[1:] if len(minutes) > 2 else minutes
    window = max(1, min(WINDOW, len(steady) // 2))
    first, last = steady[:window], steady[-window:]

    def p99(rows: list[dict[str, Any]]) -> float:
        values = [r["p99_ms"] for r in rows if r["p99_ms"] == r["p99_ms"]]  # NaN: none answered
        return float(np.median(values)) if values else float("nan")

    early, late = p99(first), p99(last)
    drift = (late - early) / early if early == early and early > 0 else float("nan")
    growth = {
        name: round(last[-1]["rss_mib"][name] - first[0]["rss_mib"].get(name, 0.0), 1)
        for name in last[-1]["rss_mib"]
    }
    return {
        "window_minutes": window,
        "p99_early_ms": round(early, 2),
        "p99_late_ms": round(late, 2),
        "p99_drift": round(drift, 4) if drift == drift else None,
        "p99_drift_target": TARGET_P99_DRIFT,
        "p99_drift_met": drift == drift and drift <= TARGET_P99_DRIFT,
        "rss_growth_mib": growth,
        "errors": sum(sum(r["errors"].values()) for r in minutes),
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    groups = list(result["minutes_detail"][0]["rss_mib"])
    lines = [
        f"# Soak: {result['minutes']} minutes at {result['rate']:g} requests/s",
        "",
        f"Measured {result['measured_at']} on {result['machine']['cores']} cores"
        f" ({result['machine']['cpu']}), model `{result['model_version']}`. Written by"
        " `python -m bench.soak` (`make soak`).",
        "",
        "| minute | p50 ms | p99 ms | achieved/s | errors |"
        + "".join(f" {name} MiB |" for name in groups),
        "| ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(groups),
    ]
    for m in result["minutes_detail"]:
        lines.append(
            f"| {m['minute']} | {m['p50_ms']} | {m['p99_ms']} | {m['achieved_per_s']} |"
            f" {sum(m['errors'].values())} |" + "".join(f" {v:g} |" for v in m["rss_mib"].values())
        )
    drift = s["p99_drift"]
    lines += [
        "",
        f"p99, median of the first and last {s['window_minutes']} steady minutes:"
        f" {s['p99_early_ms']} ms → {s['p99_late_ms']} ms, drift "
        + ("n/a" if drift is None else f"{drift:+.1%}")
        + f" (target at most {s['p99_drift_target']:.0%}:"
        f" {'met' if s['p99_drift_met'] else 'not met'}). Errors in all: {s['errors']:,}.",
        "",
        "Resident memory growth over the run, MiB: "
        + ", ".join(f"{k} {v:+g}" for k, v in s["rss_growth_mib"].items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


@app.command()
def main(
    minutes: Annotated[int, typer.Option(min=1, help="minutes of load")] = 30,
    rate: Annotated[float, typer.Option(help="requests per second")] = 200.0,
    out: Annotated[Path, typer.Option(help="result file")] = RESULTS / "soak.json",
) -> None:
    from bench.__main__ import API_KEY, GATEWAY, api_bodies, machine, start_system, world_of
    from training.sources.synthetic import loan_book_from_world

    console.rule("soak: servers, model, services")
    manifest = start_system()
    bodies = api_bodies(loan_book_from_world(world_of(manifest)))
    console.rule(f"{minutes} minutes at {rate:g} requests/s")
    detail = asyncio.run(soak(GATEWAY, bodies, API_KEY, system_meter(), minutes=minutes, rate=rate))
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model_version": manifest["version"],
        "minutes": minutes,
        "rate": rate,
        "minutes_detail": detail,
        "summary": summary(detail),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    console.print(markdown(result))
    console.print(f"written to {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    app()
