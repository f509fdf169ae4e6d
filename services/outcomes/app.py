"""The outcomes service's operator port (its metrics port): Prometheus's `/metrics`, the shadow
comparison as HTML (`/shadow`) and JSON (`/shadow.json`), and the promotion gate's input
(`/shadow/pairs.json?challenger=<bundle>`). One port, so the deployment, the supervisor and the
health check that already reach `/metrics` reach the report too; it stays inside the cluster
(pairs carry each matured loan's group and outcome, without any identifier).

The JSON shape of `/shadow/pairs.json` is a contract the promotion gate codes against:
``{"challenger", "champion", "rows": [{"defaulted", "champion_pd", "challenger_pd",
"champion_band", "challenger_band", "gender", "age_band"}]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.outcomes.shadow_report import (
    comparisons,
    pairs_for_gate,
    plain,
    report_html,
    report_json,
)
from services.outcomes.store import OutcomesStore

START_SECONDS = 10.0


def create_app(store: OutcomesStore) -> FastAPI:
    app = FastAPI(
        title="Alama outcomes (operator port)", openapi_url=None, docs_url=None, redoc_url=None
    )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/shadow", response_class=HTMLResponse)
    async def shadow_page(tenant: str | None = None) -> HTMLResponse:
        found = await comparisons(store, tenant)
        return HTMLResponse(report_html(found, datetime.now(UTC)))

    @app.get("/shadow.json")
    async def shadow_json(tenant: str | None = None) -> JSONResponse:
        return JSONResponse(report_json(await comparisons(store, tenant), datetime.now(UTC)))

    @app.get("/shadow/pairs.json")
    async def gate_input(
        challenger: Annotated[str, Query(min_length=1, max_length=200)],
    ) -> dict[str, Any]:
        result: dict[str, Any] = plain(await pairs_for_gate(store, challenger))
        return result

    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the service's own loop: `run_until_signalled` owns SIGTERM and SIGINT
    and stops this server from `serve`'s shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OperatorServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_operator_server(app: FastAPI, port: int, host: str = "0.0.0.0") -> OperatorServer:
    """Serve `app` on `port`; returns once it accepts connections (a taken port fails here)."""
    sock = socket.create_server((host, port), backlog=128)
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", log_config=None, access_log=False
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="outcomes-operator-port")
    async with asyncio.timeout(START_SECONDS):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the operator port stopped during start-up")
            await asyncio.sleep(0.01)
    return OperatorServer(server, task)
