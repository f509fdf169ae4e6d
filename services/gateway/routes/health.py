"""Liveness and readiness; no authentication, so they say what failed but never where.

A probe's error (a host name, a port, a library's message) goes to the log, not the response:
anyone on the public port can read /readyz. Metrics are on the operator port (app.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from services.gateway.deps import BackendsDep, SettingsDep
from services.gateway.schemas import DependencyStatus

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=DependencyStatus)
async def healthz() -> DependencyStatus:
    """The process is up; depends on nothing, so a dependency outage never restarts it."""
    return DependencyStatus(status="ok", checks={})


async def _check(name: str, probe: Callable[[], Awaitable[None]], within: float) -> str:
    try:
        async with asyncio.timeout(within):
            await probe()
    except TimeoutError:
        log.warning("readiness probe timed out", extra={"dependency": name, "seconds": within})
        return f"error: no answer within {within}s"
    except Exception as exc:
        log.warning(
            "readiness probe failed",
            extra={"dependency": name, "error": f"{getattr(exc, 'detail', None) or exc!r}"},
        )
        return "error: unavailable"
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
    results = await asyncio.gather(*(_check(n, p, timeout) for n, p in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    ready = all(r == "ok" for r in results)
    body = DependencyStatus(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
