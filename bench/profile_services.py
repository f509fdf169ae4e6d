"""`make profile`: every running service under load, sampled by py-spy, with its flame graph.

    python -m bench.profile_services [--rate 100] [--seconds 40] [--webhooks 1000]

`POST /v1/scores` at a fixed open-loop rate, with mobile-money webhooks beside it, so every
service works: the gateway and scoring answer, explanation, the audit and drift follow every
decision, the feature store ingests. py-spy samples each service process (and each replica)
meanwhile, without stopping it. Written to bench/results/: `profile-<service>.svg` (flame
graphs), `profile-<service>.txt` (py-spy's raw stacks) and `profiles.md`: the CPU milliseconds
each process spent per request (`bench.procs`) and each service's heaviest frames, by the share
of samples in which they were on the stack and in which they were running themselves.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench.load import load_session, score_loop
from bench.procs import ProcessMeter, system_meter

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
PY_SPY = Path(sys.executable).parent / "py-spy"


def frame_label(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (path/to/file.py)``: lines vary per sample."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':', 1)[0].rstrip(')')})" if where else name


def heaviest(raw: str, top: int = 12) -> dict[str, Any]:
    """From py-spy's raw output (``frame;frame;... count`` per line): the samples in all, and
    the frames with the largest inclusive and self shares."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_label(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    share = (lambda n: round(n / total, 3)) if total else (lambda n: 0.0)
    ours = [(f, n) for f, n in inclusive.most_common() if "services/" in f]
    return {
        "samples": total,
        "self": [(f, share(n)) for f, n in own.most_common(top)],
        "inclusive_services": [(f, share(n)) for f, n in ours[:top]],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Services under load: {result['rate']:g} requests/s for {result['seconds']:g} s,"
        f" webhooks at {result['webhooks']:g} transactions/s",
        "",
        f"Measured {result['measured_at']}, model `{result['model_version']}`. Written by"
        " `python -m bench.profile_services` (`make profile`); flame graphs beside this file as"
        " `profile-<service>.svg`.",
        "",
        "CPU milliseconds per request by process (every request's share of what the machine"
        " did, the webhooks' work included):",
        "",
        "| " + " | ".join(result["cpu_ms_per_request"]) + " |",
        "|" + " ---: |" * len(result["cpu_ms_per_request"]),
        "| " + " | ".join(f"{v:g}" for v in result["cpu_ms_per_request"].values()) + " |",
    ]
    for name, profile in result["profiles"].items():
        lines += [
            "",
            f"## {name} ({profile['samples']:,} samples while running)",
            "",
            "Running itself (self share of samples):",
            "",
            *[f"- {share:.1%} `{frame}`" for frame, share in profile["self"]],
            "",
            "On the stack, Alama's own frames (inclusive share):",
            "",
            *[f"- {share:.1%} `{frame}`" for frame, share in profile["inclusive_services"]],
        ]
    return "\n".join(lines) + "\n"


async def _load(
    rate: float, seconds: float, webhooks: float, meter: ProcessMeter
) -> dict[str, Any]:
    """The load; the CPU per request measured from its first request (the book and the
    requests are built before) until every downstream group caught up."""
    import json

    import httpx

    from bench.__main__ import API_KEY, GATEWAY, api_bodies, settle, world_of
    from bench.mixed import _stream_webhooks, deliveries, run_transactions
    from infra.demo import BUNDLE
    from services.common.settings import InfraSettings
    from simulator.senders import GatewayClient
    from simulator.settings import SimulatorSettings
    from training.sources.synthetic import loan_book_from_world

    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    book = loan_book_from_world(world_of(manifest))
    bodies = api_bodies(book)
    batches = deliveries(
        run_transactions(book.mobile_money, int(webhooks * (seconds + 5)), uuid.uuid4().hex[:8]),
        batch_size=100,
    )
    settings = SimulatorSettings()
    stop = asyncio.Event()
    async with (
        httpx.AsyncClient(base_url=GATEWAY, timeout=10.0) as http,
        load_session(GATEWAY) as client,
    ):
        sender = GatewayClient(
            http,
            api_key=settings.api_key.get_secret_value(),
            webhook_secret=settings.webhook_secret.get_secret_value(),
        )
        before = meter.snapshot()
        streaming = asyncio.create_task(_stream_webhooks(sender, batches, webhooks, stop))
        result = await score_loop(client, bodies, rate=rate, duration=seconds, headers=API_KEY)
        stop.set()
        await streaming
    await settle(InfraSettings())
    return {
        "model_version": manifest["version"],
        "api": result.as_dict(),
        "cpu_ms_per_request": meter.per_request(before, meter.snapshot(), result.reached),
    }


@app.command()
def main(
    rate: Annotated[float, typer.Option(help="requests per second")] = 100.0,
    seconds: Annotated[float, typer.Option(help="seconds of load (and of sampling)")] = 40.0,
    webhooks: Annotated[float, typer.Option(help="webhook transactions per second")] = 1000.0,
    out: Annotated[Path, typer.Option(help="results folder")] = RESULTS,
) -> None:
    from bench.__main__ import start_system
    from infra import supervisor

    start_system()
    pids = {
        name: pid
        for spec in supervisor.SERVICES
        for name in [spec.name, *supervisor.running_replicas(spec.name)]
        if (pid := supervisor.pid_of(name)) is not None
    }
    out.mkdir(parents=True, exist_ok=True)
    meter = system_meter()
    console.rule(f"py-spy on {', '.join(pids)} while {rate:g} requests/s run for {seconds:g} s")
    samplers = []
    for name, pid in pids.items():
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            samplers.append(
                subprocess.Popen(
                    [
                        str(PY_SPY),
                        "record",
                        "--rate",
                        "50",
                        "--duration",
                        str(int(seconds) + 20),
                        "--pid",
                        str(pid),
                        "--nonblocking",
                        "--format",
                        fmt,
                        "--output",
                        str(out / f"profile-{name}.{suffix}"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    loaded = asyncio.run(_load(rate, seconds, webhooks, meter))
    for sampler in samplers:
        sampler.wait()
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": loaded["model_version"],
        "rate": rate,
        "seconds": seconds,
        "webhooks": webhooks,
        "api": loaded["api"],
        "cpu_ms_per_request": loaded["cpu_ms_per_request"],
        "profiles": {
            name: heaviest((out / f"profile-{name}.txt").read_text())
            for name in pids
            if (out / f"profile-{name}.txt").exists()
        },
    }
    (out / "profiles.md").write_text(markdown(result))
    console.print(markdown(result))
    console.print(f"written: {out / 'profiles.md'} and the profile-<service>.svg flame graphs")


if __name__ == "__main__":
    app()
