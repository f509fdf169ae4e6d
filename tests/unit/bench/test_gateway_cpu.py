"""The gateway's in-process CPU bench runs its requests and reports per request."""

from __future__ import annotations

from bench.gateway_cpu import _measure


async def test_the_bench_scores_every_request_and_reports_per_request_costs() -> None:
    report = await _measure(100, "", grpc=True, profile=True)
    assert report["requests"] == 100 and not report["redis"] and report["grpc"]
    assert 0 < report["cpu_ms_per_request"] <= report["wall_ms_per_request"] * 1.5
    assert "fastapi/routing.py" in report["profile"]  # the app ran under the profiler
