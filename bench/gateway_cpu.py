"""The gateway's own CPU per synchronous request, in one process, without the rest of the system.

    python -m bench.gateway_cpu [--requests 3000] [--redis redis://127.0.0.1:16379/0] [--grpc]

The gateway app on its unit tests' fake backends (`tests.unit.gateway.fakes`), driven by an
in-process httpx client: `POST /v1/scores` with a bearer token, `--requests` times after a
warm-up, and the process's CPU time divided by them (the client's share included, so compare
runs, not absolute numbers). `--redis` puts the real rate limiter and revocation list on that
Redis (three round trips a request); `--grpc` sends each request through the real gRPC client
to the fake scoring server in the same process. `--profile` adds cProfile's top functions.
Written to bench/results/gateway-cpu.json. What it isolates: the gateway's Python work, which
`make bench-quick` sees only mixed with uvicorn, the network and every other process.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import pstats
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
WARM_UP = 200


async def _measure(requests: int, redis_url: str, grpc: bool, profile: bool) -> dict[str, Any]:
    # a bench on fake backends: the development defaults of the settings it does not set
    os.environ.setdefault("ALAMA_DEV_MODE", "1")
    import grpc as grpc_lib
    import httpx
    from redis.asyncio import Redis

    from services.gateway.app import create_app
    from services.gateway.clients import Backends, GrpcScoring, RedisRevocations, Revocations
    from services.gateway.rate_limits import RateLimiter
    from services.gateway.security import SCORE_WRITE, issue_token
    from services.gateway.settings import GatewaySettings
    from tests.unit.gateway.fakes import (
        KNOWN_MEMBERS,
        FakeEvents,
        FakeExplanations,
        FakeReplayStore,
        FakeRevocations,
        FakeScoring,
        start_fake_grpc,
    )

    settings = GatewaySettings(
        jwt_secret=SecretStr("bench-gateway-cpu-secret-of-at-least-32-bytes"),
        webhook_secret=SecretStr("bench-gateway-cpu-webhook-secret"),
        pseudonym_key=SecretStr("bench-gateway-cpu-pseudonym-key"),
        rate_limit_default="1000000/second",
    )
    redis = Redis.from_url(redis_url) if redis_url else None
    limiter = RateLimiter.on_redis(redis, settings) if redis is not None else None
    revocations: Revocations = RedisRevocations(redis) if redis is not None else FakeRevocations()
    fake = await start_fake_grpc() if grpc else None
    channel = grpc_lib.aio.insecure_channel(fake.target) if fake is not None else None
    scoring = GrpcScoring(channel, 2.0) if channel is not None else FakeScoring()
    backends = Backends(
        scoring=scoring,
        explanations=FakeExplanations(),
        events=FakeEvents(),
        replay=FakeReplayStore(),
        revocations=revocations,
        limiter=limiter,
    )
    token = issue_token(settings, "bench", [SCORE_WRITE], tenant="dev-sacco")
    headers = {"Authorization": f"Bearer {token}"}
    member = sorted(KNOWN_MEMBERS)[0]
    transport = httpx.ASGITransport(app=create_app(settings, backends=backends))
    profiler = cProfile.Profile() if profile else None
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

            async def send(i: int) -> None:
                body = {
                    "application_id": f"bench-{i}",
                    "member_id": member,
                    "product": "emergency",
                    "amount_kes": 10_000,
                    "term_months": 6,
                }
                answer = await client.post("/v1/scores", json=body, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")

            for i in range(WARM_UP):
                await send(i)
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(requests):
                await send(WARM_UP + i)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            top = ""
            if profiler is not None:
                profiler.enable()
                for i in range(requests):
                    await send(WARM_UP + requests + i)
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
                top = out.getvalue()
    finally:
        if channel is not None:
            await channel.close()
        if fake is not None:
            await fake.server.stop(None)
        if redis is not None:
            await redis.aclose()
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": requests,
        "redis": bool(redis_url),
        "grpc": grpc,
        "cpu_ms_per_request": round(cpu / requests * 1e3, 3),
        "wall_ms_per_request": round(wall / requests * 1e3, 3),
        "profile": top,
    }


@app.command()
def main(
    requests: Annotated[int, typer.Option(min=100, help="requests measured")] = 3000,
    redis: Annotated[str, typer.Option(help="Redis URL for the rate limiter and revocations")] = "",
    grpc: Annotated[bool, typer.Option(help="through the real gRPC client")] = False,
    profile: Annotated[bool, typer.Option(help="also print cProfile's top functions")] = False,
) -> None:
    report = asyncio.run(_measure(requests, redis, grpc, profile))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway-cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print(
        f"{report['cpu_ms_per_request']} CPU ms and {report['wall_ms_per_request']} ms a request"
        f" (redis {report['redis']}, grpc {report['grpc']}, {requests:,} requests)"
    )
    if report["profile"]:
        console.print(report["profile"], markup=False, highlight=False)


if __name__ == "__main__":
    app()
