"""Prometheus metrics of the gateway and the ASGI middleware that records them.

Requests are labelled by route template (``/v1/decisions/{decision_id}``), never the raw path,
so ids cannot explode the label cardinality; a path no route matches is ``unmatched``.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "alama_http_requests_total", "HTTP requests served", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "alama_http_request_seconds",
    "Time to serve one HTTP request",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
UPSTREAM_SECONDS = Histogram(
    "alama_gateway_upstream_seconds",
    "Time of one gRPC call to scoring or explanation, by outcome",
    ["service", "method", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SHED_REQUESTS = Counter(
    "alama_gateway_shed_requests_total",
    "Requests refused to protect the gateway: in_flight (503), body_too_large (413),"
    " body_too_slow (408), rate_limited (429)",
    ["reason"],
)
RATE_LIMITER_ERRORS = Counter(
    "alama_gateway_rate_limiter_errors_total",
    "Rate-limit checks that could not reach Redis in time and let the request through",
)
WEBHOOK_TRANSACTIONS = Counter(
    "alama_gateway_webhook_transactions_total", "Mobile-money transactions accepted"
)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route, method = route_template(scope), scope["method"]
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_SECONDS.labels(route, method).observe(time.perf_counter() - started)
