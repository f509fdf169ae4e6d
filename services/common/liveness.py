"""Liveness of a stream worker: is each agent making progress when it has work?

An HTTP endpoint that answers while the process lives says nothing about the agents: the metrics
thread keeps serving while an agent waits forever on a hung call or the event loop is blocked.
Each agent therefore keeps a `Heartbeat` that its loop writes (a record taken, a record done, a
dependency being retried) and that the lag sampler tells how many records wait on this worker's
partitions; `/livez`, served by the same thread as `/metrics`, reads them and answers 503 when an
agent has had a record in hand, or records waiting, for longer than the threshold without
finishing one. An idle agent with nothing waiting is alive however long it sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

LIVENESS_PATH = "/livez"
#: answers 200 once the worker takes events (its tables recovered), 503 before and while a
#: rebalance recovers them again: the metrics thread is up long before that
READINESS_PATH = "/readyz"

Clock = Callable[[], float]


class Heartbeat:
    """One agent's progress. Written by the agent's loop, read by the probe's thread (plain
    float and int assignments, so no lock is needed)."""

    def __init__(self, name: str, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.last_progress = clock()
        self.busy_since: float | None = None
        self.waiting = 0
        self.waiting_since: float | None = None

    def began(self) -> None:
        """A record (or batch) is in hand."""
        if self.busy_since is None:
            self.busy_since = self.clock()

    def progressed(self) -> None:
        """A record was finished (processed or dead-lettered), or a dependency is being retried:
        the loop is doing what it should."""
        self.last_progress = self.clock()

    def finished(self) -> None:
        """Nothing in hand any more."""
        self.last_progress = self.clock()
        self.busy_since = None

    def set_waiting(self, records: int) -> None:
        """Records waiting on this worker's partitions (uncommitted lag), from the lag sampler."""
        if records > 0 and self.waiting_since is None:
            self.waiting_since = self.clock()
        elif records <= 0:
            self.waiting_since = None
        self.waiting = max(records, 0)

    def stalled_for(self) -> float:
        """Seconds the agent has had work without finishing any of it (0 when it has none)."""
        since = self.busy_since if self.busy_since is not None else self.waiting_since
        if since is None:
            return 0.0
        return max(0.0, self.clock() - max(since, self.last_progress))


@dataclass(frozen=True)
class AgentHealth:
    name: str
    stalled_s: float
    waiting: int
    busy: bool
    alive: bool


class Liveness:
    """The heartbeats of one worker's agents and the threshold past which one is stalled."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self._beats: dict[str, Heartbeat] = {}

    def heartbeat(self, name: str, clock: Clock = time.monotonic) -> Heartbeat:
        """The heartbeat of agent `name` (created on first use)."""
        if name not in self._beats:
            self._beats[name] = Heartbeat(name, clock)
        return self._beats[name]

    def __iter__(self) -> Iterator[Heartbeat]:
        return iter(list(self._beats.values()))

    def report(self) -> list[AgentHealth]:
        out = []
        for beat in self:
            stalled = beat.stalled_for()
            out.append(
                AgentHealth(
                    name=beat.name,
                    stalled_s=round(stalled, 3),
                    waiting=beat.waiting,
                    busy=beat.busy_since is not None,
                    alive=stalled <= self.threshold_s,
                )
            )
        return out

    @property
    def alive(self) -> bool:
        return all(agent.alive for agent in self.report())


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the logs."""


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def health_app(
    liveness: Liveness,
    registry: CollectorRegistry = REGISTRY,
    ready: Callable[[], bool] | None = None,
) -> WSGIApp:
    """`/livez` from the heartbeats, `/readyz` from `ready` (always ready without one);
    everything else is Prometheus' exposition."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == READINESS_PATH:
            is_ready = True if ready is None else bool(ready())
            return _json(start_response, is_ready, {"ready": is_ready})
        if path != LIVENESS_PATH:
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        agents = liveness.report()
        alive = all(a.alive for a in agents)
        body = json.dumps(
            {
                "alive": alive,
                "threshold_s": liveness.threshold_s,
                "agents": [a.__dict__ for a in agents],
            }
        ).encode()
        return _json(start_response, alive, body)

    return app


def _json(
    start_response: Callable[..., Any], ok: bool, body: bytes | dict[str, Any]
) -> list[bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


@dataclass
class HealthServer:
    """The metrics-and-liveness HTTP server running in a daemon thread."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_health(
    port: int,
    liveness: Liveness,
    *,
    addr: str = "0.0.0.0",
    registry: CollectorRegistry = REGISTRY,
    ready: Callable[[], bool] | None = None,
) -> HealthServer:
    """Serve `/metrics`, `/livez` and `/readyz` on `port` (0 picks a free one) from a daemon
    thread."""
    server = make_server(
        addr,
        port,
        health_app(liveness, registry, ready),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="alama-health", daemon=True)
    thread.start()
    return HealthServer(server, thread)
