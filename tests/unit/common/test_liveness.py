"""The liveness probe of the stream workers answers from the agents' heartbeats, not from the
metrics thread being up: an agent with work that finishes nothing is reported stalled."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from services.common.faust_app import worker_ready
from services.common.liveness import (
    LIVENESS_PATH,
    READINESS_PATH,
    Heartbeat,
    Liveness,
    serve_health,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_agent_is_alive_however_long_it_sleeps() -> None:
    clock = Clock()
    beat = Heartbeat("a", clock)
    clock.now += 10_000
    assert beat.stalled_for() == 0.0


def test_a_record_in_hand_without_progress_stalls_the_agent() -> None:
    clock, liveness = Clock(), Liveness(threshold_s=60)
    beat = liveness.heartbeat("a", clock)
    beat.began()
    clock.now += 30
    beat.progressed()  # one record done: the batch goes on
    clock.now += 59
    assert liveness.alive
    clock.now += 2
    assert not liveness.alive and liveness.report()[0].busy
    beat.finished()
    assert liveness.alive


def test_records_waiting_without_progress_stall_the_agent() -> None:
    clock, liveness = Clock(), Liveness(threshold_s=60)
    beat = liveness.heartbeat("a", clock)
    clock.now += 5_000  # idle for long, then records arrive
    beat.set_waiting(12)
    clock.now += 59
    assert liveness.alive  # waiting since the lag was seen, not since the last event
    clock.now += 2
    assert not liveness.alive
    assert liveness.report()[0].waiting == 12
    beat.progressed()
    assert liveness.alive
    beat.set_waiting(0)
    clock.now += 1_000
    assert liveness.alive


@pytest.fixture
def liveness() -> Liveness:
    return Liveness(threshold_s=60)


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_livez_fails_while_metrics_still_answers(liveness: Liveness) -> None:
    clock = Clock()
    beat = liveness.heartbeat("feature_store.mobile_money", clock)
    server = serve_health(0, liveness, addr="127.0.0.1")
    try:
        assert _get(server.port, LIVENESS_PATH)[0] == 200
        beat.began()
        clock.now += 61
        status, body = _get(server.port, LIVENESS_PATH)
        assert status == 503
        report = json.loads(body)
        assert report["alive"] is False
        assert report["agents"][0]["name"] == "feature_store.mobile_money"
        assert report["agents"][0]["stalled_s"] == pytest.approx(61)
        status, body = _get(server.port, "/metrics")
        assert (status == 200 and b"alama_" in body) or b"python_info" in body
        beat.finished()
        assert _get(server.port, LIVENESS_PATH)[0] == 200
    finally:
        server.close()


def test_readyz_follows_the_worker_while_metrics_and_livez_answer(liveness: Liveness) -> None:
    state = {"ready": False}
    server = serve_health(0, liveness, addr="127.0.0.1", ready=lambda: state["ready"])
    plain = serve_health(0, liveness, addr="127.0.0.1")  # no readiness given: ready when up
    try:
        status, body = _get(server.port, READINESS_PATH)
        assert (status, json.loads(body)) == (503, {"ready": False})
        assert _get(server.port, LIVENESS_PATH)[0] == 200
        assert _get(server.port, "/metrics")[0] == 200
        state["ready"] = True
        assert _get(server.port, READINESS_PATH) == (200, b'{"ready": true}')
        assert _get(plain.port, READINESS_PATH)[0] == 200
    finally:
        server.close()
        plain.close()


class _Recovery:
    def __init__(self) -> None:
        self.completed = asyncio.Event()


class _Tables:
    def __init__(self) -> None:
        self.recovery = _Recovery()


class _App:
    def __init__(self) -> None:
        self.tables = _Tables()
        self.rebalancing = False


def test_a_faust_worker_is_ready_once_recovered_and_not_while_rebalancing() -> None:
    app = _App()
    assert not worker_ready(app)  # type: ignore[arg-type]  # the attributes Faust's App has
    app.tables.recovery.completed.set()
    assert worker_ready(app)  # type: ignore[arg-type]
    app.rebalancing = True
    assert not worker_ready(app)  # type: ignore[arg-type]
    assert not worker_ready(object())  # type: ignore[arg-type]  # not started: no tables yet
