"""Overload benchmark of the gateway's load shedding: `--overload` times its configured capacity.

    python -m bench.overload run [--capacity 10] [--overload 5] [--duration 10]

The real gateway app runs under uvicorn in a child process, on fakes: scoring is a stand-in with a
fixed capacity (`--workers` concurrent scorings of `1 / capacity * workers` seconds each) behind a
bounded queue that answers RESOURCE_EXHAUSTED when full, as scoring's batcher does, and the
rate limiter counts in memory. The gateway's in-flight cap and the tenants' rate are set from the
capacity. The driver sends requests on a fixed schedule (open loop, as bench/load.py does: each
answer is timed from the moment it was due, so queueing shows) from one noisy tenant and three
quiet ones, and writes served-latency percentiles and status counts per tenant to
bench/results/overload.json and overload.md. A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer
import uvicorn
from pydantic import SecretStr
from rich.console import Console

from services.common.notices import OutcomeChange
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.protos.alama.scoring.v1 import scoring_pb2
from services.gateway.app import create_app
from services.gateway.clients import Backends
from services.gateway.errors import NotFound, UpstreamUnavailable
from services.gateway.rate_limits import RateLimiter
from services.gateway.security import issue_token
from services.gateway.settings import GatewaySettings

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
NOISY = "sacco-noisy"
QUIET = ("sacco-a", "sacco-b", "sacco-c")
DEADLINE_S = 2.0  # the gateway's own deadline (grpc_timeout_seconds)


def gateway_settings(capacity: float, workers: int) -> GatewaySettings:
    """In-flight cap: what the workers finish in 2 service times, so an admitted request waits at
    most about one service time for a worker; each tenant may use half the capacity."""
    return GatewaySettings(
        jwt_secret=SecretStr("bench-overload-jwt-secret-of-32-bytes-or-more"),
        webhook_secret=SecretStr("bench-overload-webhook-secret-32-bytes"),
        pseudonym_key=SecretStr("bench-overload-pseudonym-key-32-bytes"),
        max_in_flight=workers * 2,
        rate_limit_default=f"{max(1, int(capacity / 2))}/second",
        grpc_timeout_seconds=DEADLINE_S,
        metrics_port=0,
    )


class CapacityScoring:
    """`workers` scorings at a time, `service_s` each; a full queue is RESOURCE_EXHAUSTED."""

    def __init__(self, workers: int, service_s: float, queue: int) -> None:
        self.slots = asyncio.Semaphore(workers)
        self.service_s = service_s
        self.queue = queue
        self.waiting = 0

    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision:
        if self.waiting >= self.queue:
            raise UpstreamUnavailable("scoring is unavailable (RESOURCE_EXHAUSTED); retry later")
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            await asyncio.sleep(self.service_s)
        finally:
            self.slots.release()
        decision = CreditDecision(
            decision_id=f"d-{application.application_id}",
            application_id=application.application_id,
            member_id=application.member_id,
            tenant_id=application.tenant_id,
            model_version="bench-overload",
            probability_of_default=0.05,
            score=700,
            band=DecisionBand.DECISION_BAND_APPROVE,
        )
        decision.decided_at.GetCurrentTime()
        return decision

    async def score_batch(
        self, applications: Sequence[LoanApplicationSubmitted]
    ) -> list[scoring_pb2.ScoreResult]:
        return [scoring_pb2.ScoreResult(decision=await self.score(a)) for a in applications]

    async def describe_model(self) -> scoring_pb2.ModelDescription:
        return scoring_pb2.ModelDescription(
            model_version="bench-overload", inputs=scoring_pb2.MODEL_INPUTS_FEATURE_STORE
        )

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


class Unused:
    """The backends this benchmark never reaches."""

    async def decision(self, **_: Any) -> CreditDecision:
        raise NotFound("no decisions in this benchmark")

    async def explanation(self, decision_id: str, *, tenant: str) -> CreditExplanation:
        raise NotFound("no explanations in this benchmark")

    async def reviewed_decision(
        self, decision_id: str, *, tenant: str
    ) -> tuple[CreditDecision, ReviewOutcome | None]:
        raise NotFound("no decisions in this benchmark")

    async def outcome_changes(self, decision_id: str, *, tenant: str) -> list[OutcomeChange]:
        raise NotFound("no decisions in this benchmark")

    async def publish(self, topic: str, envelopes: Sequence[EventEnvelope]) -> None:
        pass

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        return True

    async def release(self, key: str) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


@app.command(hidden=True)
def serve(port: int, capacity: float, workers: int, shedding: bool = True) -> None:
    """The gateway on fakes (the child process); `--no-shedding`: no in-flight cap and no rate
    limits, only scoring's bounded queue (the baseline)."""
    settings = gateway_settings(capacity, workers)
    if not shedding:
        settings = settings.model_copy(update={"max_in_flight": 1_000_000})
    unused = Unused()
    backends = Backends(
        scoring=CapacityScoring(workers, workers / capacity, queue=workers * 8),
        explanations=unused,
        events=unused,
        replay=unused,
        limiter=RateLimiter.in_memory(settings) if shedding else None,
    )
    uvicorn.run(
        create_app(settings, backends=backends),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    arr = np.array(values)
    return {
        f"{name}_ms": round(float(np.percentile(arr, q)), 2)
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
    }


def _schedule(total: int, noisy_share: float, seed: int = 7) -> list[str]:
    """Which tenant sends each request: the noisy one its share, the quiet ones the rest."""
    rng = random.Random(seed)
    return [NOISY if rng.random() < noisy_share else rng.choice(QUIET) for _ in range(total)]


async def drive(
    base_url: str, settings: GatewaySettings, *, rate: float, duration: float, noisy_share: float
) -> dict[str, Any]:
    tokens = {
        tenant: issue_token(settings, "bench", ["score:write"], timedelta(hours=1), tenant=tenant)
        for tenant in (NOISY, *QUIET)
    }
    total = int(rate * duration)
    tenants = _schedule(total, noisy_share)
    latencies: dict[str, list[float]] = defaultdict(list)  # by status
    by_tenant: dict[str, Counter[str]] = defaultdict(Counter)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=None) as client:
        for _ in range(20):  # warm up connections and the app, outside every budget
            await client.get("/healthz")
        started = time.perf_counter()

        async def one(i: int) -> None:
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tenant = tenants[i]
            body = {
                "application_id": f"A-{i}",
                "member_id": f"M-{i % 500}",
                "product": "emergency",
                "amount_kes": 5_000,
                "term_months": 6,
            }
            headers = {"Authorization": f"Bearer {tokens[tenant]}"}
            try:
                async with asyncio.timeout(DEADLINE_S * 2):
                    response = await client.post("/v1/scores", json=body, headers=headers)
                status = str(response.status_code)
            except TimeoutError:
                status = "client_deadline"
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies[status].append((time.perf_counter() - due) * 1e3)
            by_tenant[tenant][status] += 1

        await asyncio.gather(*(one(i) for i in range(total)))
        elapsed = time.perf_counter() - started
    served = latencies.get("200", [])
    within = sum(1 for ms in served if ms <= DEADLINE_S * 1e3)
    return {
        "sent": total,
        "elapsed_s": round(elapsed, 2),
        "served_per_s": round(len(served) / duration, 1),
        "status_counts": {s: len(v) for s, v in sorted(latencies.items())},
        "served_latency": _percentiles(served),
        "served_within_deadline": within,
        "rejected_latency": {
            s: _percentiles(v) for s, v in sorted(latencies.items()) if s != "200"
        },
        "by_tenant": {t: dict(sorted(c.items())) for t, c in sorted(by_tenant.items())},
    }


def _markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        "# Gateway overload",
        "",
        f"Measured {report['measured_at']} on {report['machine']['cores']} cores (shared);"
        f" `python -m bench.overload run`. The gateway under uvicorn in its own process on fakes:"
        f" scoring's capacity {cfg['capacity_per_s']:g}/s ({cfg['workers']} at a time,"
        f" {cfg['service_ms']:g} ms each, a bounded queue that answers RESOURCE_EXHAUSTED),"
        f" in-flight cap {cfg['max_in_flight']}, {cfg['tenant_rate']} per tenant.",
        f"Offered {cfg['offered_per_s']:g}/s ({cfg['overload']:g}x capacity) for"
        f" {cfg['duration_s']:g} s, open loop; {cfg['noisy_share']:.0%} from `{NOISY}`, the rest"
        " spread over three quiet tenants. Latency is timed from the moment each request was due.",
        f"Baseline: the same gateway without its in-flight cap and rate limits (scoring's queue of"
        f" {cfg['scoring_queue']} still bounded).",
        "",
    ]
    for title, key in (("With load shedding", "result"), ("Baseline", "baseline")):
        if key in report:
            lines += [f"## {title}", "", *_result_lines(report[key])]
    return "\n".join(lines)


def _result_lines(res: dict[str, Any]) -> list[str]:
    served = res["served_latency"]
    lines = [
        "| served/s | served p50 | p95 | p99 | max | served within the 2 s deadline |",
        "|---|---|---|---|---|---|",
        f"| {res['served_per_s']:g} | {served['p50_ms']} ms | {served['p95_ms']} ms"
        f" | {served['p99_ms']} ms | {served['max_ms']} ms"
        f" | {res['served_within_deadline']} of {res['status_counts'].get('200', 0)} |",
        "",
        "| status | count | p50 | p99 |",
        "|---|---|---|---|",
    ]
    for status, count in res["status_counts"].items():
        lat = served if status == "200" else res["rejected_latency"][status]
        lines.append(f"| {status} | {count} | {lat['p50_ms']} ms | {lat['p99_ms']} ms |")
    lines += ["", "| tenant | answers |", "|---|---|"]
    for tenant, counts in res["by_tenant"].items():
        text = ", ".join(f"{s}: {n}" for s, n in counts.items())
        lines.append(f"| {tenant} | {text} |")
    return [*lines, ""]


@app.command()
def run(
    capacity: Annotated[float, typer.Option(help="scoring's capacity, requests per second")] = 10,
    workers: Annotated[int, typer.Option(help="concurrent scorings")] = 1,
    overload: Annotated[float, typer.Option(help="offered load as a multiple of capacity")] = 5,
    duration: Annotated[float, typer.Option(help="seconds of load")] = 10,
    noisy_share: Annotated[float, typer.Option(help="the noisy tenant's share")] = 0.75,
    baseline: Annotated[bool, typer.Option(help="also run without the gateway's shedding")] = True,
) -> None:
    """Start the gateway on fakes, overload it, write bench/results/overload.json and .md."""
    os.environ["ALAMA_DEV_MODE"] = "1"  # fakes and bench-only secrets, on this machine
    settings = gateway_settings(capacity, workers)
    rate = capacity * overload

    def one(shedding: bool) -> dict[str, Any]:
        port = _free_port()
        command = [sys.executable, "-m", "bench.overload", "serve", str(port), str(capacity)]
        command += [str(workers), "--shedding" if shedding else "--no-shedding"]
        child = subprocess.Popen(command, env=dict(os.environ))
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(base_url, child)
            console.print(
                f"POST /v1/scores at {rate:g}/s for {duration:g}s ({overload:g}x capacity),"
                f" {'with' if shedding else 'without'} load shedding"
            )
            return asyncio.run(
                drive(base_url, settings, rate=rate, duration=duration, noisy_share=noisy_share)
            )
        finally:
            child.terminate()
            child.wait(timeout=30)

    result = one(shedding=True)
    report: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "config": {
            "capacity_per_s": capacity,
            "workers": workers,
            "service_ms": round(workers / capacity * 1e3, 1),
            "max_in_flight": settings.max_in_flight,
            "tenant_rate": settings.rate_limit_default,
            "overload": overload,
            "offered_per_s": rate,
            "duration_s": duration,
            "noisy_share": noisy_share,
            "deadline_s": DEADLINE_S,
            "scoring_queue": workers * 8,
        },
        "result": result,
    }
    if baseline:
        report["baseline"] = one(shedding=False)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overload.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "overload.md").write_text(_markdown(report))
    console.print(_markdown(report))


def _wait_ready(base_url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the gateway exited with {child.returncode} during start-up")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not start within 60 s")


if __name__ == "__main__":
    app()
