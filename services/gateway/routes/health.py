"""Liveness, readiness and Prometheus metrics; no authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.deps import BackendsDep, SettingsDep
from services.gateway.schemas import DependencyStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=DependencyStatus)
async def healthz() -> DependencyStatus:
    """The process is up; depends on nothing, so a dependency outage never restarts it."""
    return DependencyStatus(status="ok", checks={})


async def _check(probe: Callable[[], Awaitable[None]], within: float) -> str:
    try:
        async with asyncio.timeout(within):
            await probe()
    except TimeoutError:
        return f"error: no answer within {within}s"
    except Exception as exc:
        return f"error: {getattr(exc, 'detail', None) or exc!r}"
    return "ok"


@router.get(
    "/readyz",
    response_model=DependencyStatus,
    responses={503: {"model": DependencyStatus, "description": "A dependency is down"}},
)
async def readyz(settings: SettingsDep, backends: BackendsDep) -> Response:
    """Kafka, Redis and scoring all answer: 200; otherwise 503 naming what failed."""
    probes = {
        "kafka": backends.events.ping,
        "redis": backends.replay.ping,
        "scoring": backends.scoring.ping,
    }
    timeout = settings.readiness_timeout_seconds
    results = await asyncio.gather(*(_check(p, timeout) for p in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    ready = all(r == "ok" for r in results)
    body = DependencyStatus(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
