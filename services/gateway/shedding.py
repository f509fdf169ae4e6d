"""Load shedding at the ASGI level: refuse what would pile up before any work is spent on it.

`InFlightLimit` caps how many requests one process serves at once and answers 503 with
Retry-After beyond it, at once and without queueing: under overload the requests being served
stay fast and the rest are told to come back, instead of every request waiting longer (and timing
out) in a queue that only grows. The probes are exempt, so an overloaded gateway is not restarted.

`BodyLimit` refuses a body larger than its route class allows (the JSON API or the webhook) with
413 before reading it: from ``Content-Length`` when the caller sends one, otherwise by counting
the chunks of a streamed body as the application reads them, so an oversized body is never
buffered or parsed. A body that takes longer than its deadline to arrive is a 408, so a client
trickling bytes cannot hold one of the in-flight slots for long.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.metrics import SHED_REQUESTS

log = logging.getLogger(__name__)

#: What every API route may answer under load, for the OpenAPI description of each router.
SHED_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "The body is larger than this route class allows"},
    429: {"description": "The tenant's rate limit is spent; see Retry-After and RateLimit-*"},
    503: {"description": "The gateway or a dependency is at capacity; see Retry-After"},
}
#: Paths the in-flight cap never refuses: liveness and readiness must answer under overload.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
WEBHOOK_PREFIX = "/v1/webhooks/"


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    """A complete JSON error response, written straight to the ASGI server."""
    body = json.dumps({"detail": detail}).encode("ascii")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class InFlightLimit:
    """At most `limit` requests in flight in this process; the next one is a 503 now."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_seconds)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            SHED_REQUESTS.labels("in_flight").inc()
            await send_json(
                send,
                503,
                "the gateway is at capacity; retry later",
                {"Retry-After": self.retry_after},
            )
            return
        self.in_flight += 1  # one event loop: no lock needed between the check and this
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit; the app answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body is larger than {limit} bytes", {"Connection": "close"}
        )


class BodyTooSlow(HTTPException):
    """Raised from `receive` when the body has not arrived within its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408, f"the request body did not arrive within {seconds:g}s", {"Connection": "close"}
        )


class BodyLimit:
    """413 for a body over its route class's limit, before it is read or parsed; 408 for one
    that does not arrive within `read_timeout` seconds of the request."""

    def __init__(
        self, app: ASGIApp, *, api_bytes: int, webhook_bytes: int, read_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.api_bytes = api_bytes
        self.webhook_bytes = webhook_bytes
        self.read_timeout = read_timeout

    def limit_for(self, path: str) -> int:
        return self.webhook_bytes if path.startswith(WEBHOOK_PREFIX) else self.api_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            SHED_REQUESTS.labels("body_too_large").inc()
            await self._refuse(send, limit)
            return
        received = 0
        complete = False
        started = False
        deadline = asyncio.get_running_loop().time() + self.read_timeout

        async def counted_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                SHED_REQUESTS.labels("body_too_slow").inc()
                raise BodyTooSlow(self.read_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    SHED_REQUESTS.labels("body_too_large").inc()
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except (BodyTooLarge, BodyTooSlow) as exc:
            # the app let it through (FastAPI's handlers normally answer it): answer it here
            if started:
                raise
            await send_json(send, exc.status_code, exc.detail, {"Connection": "close"})

    async def _refuse(self, send: Send, limit: int) -> None:
        await send_json(
            send, 413, f"the request body is larger than {limit} bytes", {"Connection": "close"}
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one itself
    return None
