"""The FastAPI application: routers, the one error-to-status table, metrics and tracing.

`create_app` takes the backends to use (tests pass fakes); without them the lifespan opens the
real ones (Kafka producer, Redis, gRPC channels) and the operator port, and closes them on
shutdown. Tracing is installed by __main__, not here, so tests keep their own tracer provider; the
FastAPI instrumentation continues an incoming traceparent and makes the request span the parent of
every gRPC call and Kafka record the request causes.

The public port serves the API and the probes only. /metrics and the API documentation
(/docs, /redoc, /openapi.json) are on a separate operator port (``metrics_port``), the way every
other service serves its metrics, rather than behind an admin login on the public port: Prometheus
scrapes without holding an admin credential, a browser can open /docs (Swagger UI fetches the
schema without credentials), and the deployments keep the port private (the chart's
NetworkPolicy admits only the monitoring namespace to it; compose binds it to 127.0.0.1).

Load shedding runs before the routes: a cap on requests in flight (503), body limits (413) and the
RateLimit headers (shedding.py, rate_limits.py); the tenant's rate is spent once the caller is
authenticated (deps.py), the webhook's before its signature is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.signatures import SIGNATURE_HEADER
from services.gateway.clients import Backends, open_backends
from services.gateway.erasure_status import build_status_consumer
from services.gateway.errors import (
    BadSignature,
    Conflict,
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ReplayedDelivery,
    StaleDelivery,
    UpstreamFailed,
    UpstreamUnavailable,
)
from services.gateway.metrics import MetricsMiddleware
from services.gateway.model_inputs import ServingModel
from services.gateway.rate_limits import RateLimitHeaders
from services.gateway.routes import admin, applications, decisions, health, scores, webhooks
from services.gateway.schemas import WebhookDelivery
from services.gateway.security import VerifiedTokens
from services.gateway.settings import GatewaySettings
from services.gateway.shedding import BodyLimit, InFlightLimit

log = logging.getLogger(__name__)

#: The one place a domain error becomes an HTTP status (most specific class first).
STATUS_CODES: dict[type[GatewayError], int] = {
    NotAuthenticated: 401,
    BadSignature: 401,
    InsufficientScope: 403,
    NotFound: 404,
    StaleDelivery: 409,
    ReplayedDelivery: 409,
    Conflict: 409,
    InvalidRequest: 422,
    RateLimited: 429,
    UpstreamFailed: 502,
    UpstreamUnavailable: 503,
}
REALM = 'Bearer realm="alama"'
OPERATOR_START_SECONDS = 10.0


def status_code_for(exc: GatewayError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]  # type: ignore[index]
    return 500


def _headers(exc: GatewayError, retry_after_seconds: int = 1) -> dict[str, str]:
    if isinstance(exc, NotAuthenticated):
        return {"WWW-Authenticate": f'{REALM}, APIKey header="X-API-Key"'}
    if isinstance(exc, InsufficientScope):
        scope = " ".join(exc.required)
        return {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'}
    if isinstance(exc, BadSignature):
        return {"WWW-Authenticate": f'HMAC-SHA256 header="{SIGNATURE_HEADER}"'}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, UpstreamUnavailable):
        return {"Retry-After": str(retry_after_seconds)}
    return {}


class SafeJSONResponse(JSONResponse):
    """JSON that cannot fail on what a caller sent: non-ASCII escaped, no NaN."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape without echoing the input: it may hold personal data, NaN or lone
    surrogates, and a 422 must never turn into a 500 while being serialised."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        item = {
            "type": error.get("type"),
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg"),
        }
        raw_ctx = error.get("ctx") or {}
        ctx = jsonable_encoder(
            {k: str(v) if isinstance(v, Exception) else v for k, v in raw_ctx.items()}
        )
        if ctx:
            try:
                json.dumps(ctx, allow_nan=False)
                item["ctx"] = ctx
            except ValueError:
                pass
        errors.append(item)
    return SafeJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def handle_gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    status = status_code_for(exc)
    if isinstance(exc, InvalidRequest):
        content: Any = {
            "detail": [{"type": "value_error", "loc": list(exc.loc), "msg": exc.detail}]
        }
    else:
        content = {"detail": exc.detail}
    if status >= 500:
        log.warning("request failed upstream", extra={"status": status, "detail": exc.detail})
    settings: GatewaySettings = request.app.state.settings
    headers = _headers(exc, settings.retry_after_seconds)
    return SafeJSONResponse(content, status_code=status, headers=headers)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if app.state.backends is not None:  # injected: the caller owns them
        yield
        return
    settings: GatewaySettings = app.state.settings
    operator = None
    if settings.metrics_port:
        operator = await start_operator_server(
            create_operator_app(app), bind_socket(settings.host, settings.metrics_port)
        )
    try:
        backends = await open_backends(settings)
        app.state.backends = backends
        statuses = None
        if backends.erasures is not None:  # each store's erasure completion, into Redis
            statuses = build_status_consumer(settings, backends.erasures, backends.exports)
            await statuses.start()
            consuming = asyncio.create_task(statuses.run(), name="erasure-status")
        log.info(
            "gateway started",
            extra={"scoring": settings.scoring_target, "operator_port": settings.metrics_port},
        )
        try:
            yield
        finally:
            log.info("gateway stopping")
            if statuses is not None:
                await statuses.stop()
                await asyncio.gather(consuming, return_exceptions=True)
            await backends.close()
            app.state.backends = None
    finally:
        if operator is not None:
            await operator.stop()


class _OperatorServer(uvicorn.Server):
    """uvicorn for the operator port inside the gateway's process: the public server owns
    SIGTERM and SIGINT and stops this one from its lifespan."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OperatorServer:
    """The running operator port; `stop` lets in-flight scrapes finish."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or OSError naming the address: a taken port fails the start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


async def start_operator_server(app: FastAPI, sock: socket.socket) -> OperatorServer:
    """Serve `app` on `sock` (already bound) until `stop`; returns once it accepts connections."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", log_config=None, access_log=False
    )
    server = _OperatorServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="gateway-operator-port")
    async with asyncio.timeout(OPERATOR_START_SECONDS):
        while not server.started:
            if task.done():
                task.result()  # its error, if it failed
                raise RuntimeError("the operator port stopped during start-up")
            await asyncio.sleep(0.01)
    return OperatorServer(server, task)


def create_operator_app(public: FastAPI) -> FastAPI:
    """The operator port's app: Prometheus metrics and the public API's documentation."""
    app = FastAPI(
        title=f"{public.title} (operator port)",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    title = f"{public.title} API"

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(public.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=title, oauth2_redirect_url="/docs/oauth2-redirect"
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=title)

    return app


def _with_webhook_schemas(app: FastAPI) -> dict[str, Any]:
    """The generated OpenAPI plus the webhook body, which is parsed by hand after verification."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        body = WebhookDelivery.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(body.pop("$defs", {}))
        components["WebhookDelivery"] = body
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: GatewaySettings | None = None, *, backends: Backends | None = None
) -> FastAPI:
    """The gateway; pass `backends` to use them instead of connecting the real ones."""
    app = FastAPI(
        title="Alama gateway",
        version="1.0.0",
        description=(
            "Credit scoring for SACCOs: synchronous and asynchronous scoring, decisions and"
            " their explanations, and the signed mobile-money webhook."
        ),
        lifespan=lifespan,
        # on the operator port only (create_operator_app)
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings or GatewaySettings()
    app.state.backends = backends
    app.state.verified_tokens = VerifiedTokens(app.state.settings)
    app.state.serving_model = ServingModel(app.state.settings.model_inputs_seconds)
    for router in (
        scores.router,
        applications.router,
        decisions.router,
        webhooks.router,
        health.router,
        admin.router,
    ):
        app.include_router(router)
    app.add_exception_handler(GatewayError, handle_gateway_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    # outermost last: metrics see every answer, the in-flight cap refuses before anything else
    # runs, the body limit before a body is read, the RateLimit headers on every response
    settings = app.state.settings
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(
        BodyLimit,
        api_bytes=settings.max_body_bytes,
        webhook_bytes=settings.max_webhook_body_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(
        InFlightLimit,
        limit=settings.max_in_flight,
        retry_after_seconds=settings.retry_after_seconds,
    )
    app.add_middleware(MetricsMiddleware)
    app.openapi = lambda: _with_webhook_schemas(app)  # type: ignore[method-assign]
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz", exclude_spans=["receive", "send"]
    )
    return app
