"""The local infrastructure commands as a developer runs them: status, crash recovery, down.

These tests restart servers, so they run last (tests/e2e) and leave everything up again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from infra import local
from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, all_topics, ensure_topics
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def infra_command(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.local", action],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_until_gone(pid: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while local.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_status_reports_every_server_up(infra: InfraSettings) -> None:
    result = infra_command("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for row in local.status():
        assert row.ready, row
    for name in ("kafka", "redis", "postgres"):
        assert any(name in line and " up " in line for line in result.stdout.splitlines()), name


async def test_kill_9_of_kafka_then_up_keeps_topics_and_messages(infra: InfraSettings) -> None:
    spec = TopicSpec(f"test.crash-{uuid.uuid4().hex[:12]}", partitions=2, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [spec])
    producer = create_producer(infra, client_id="crash-test")
    await producer.start()
    sent = [
        wrap(LoanApplicationSubmitted(application_id=f"app-{i}"), producer="t", subject=f"a{i}")
        for i in range(20)
    ]
    try:
        await asyncio.gather(*[await publish(producer, spec.name, e) for e in sent])
    finally:
        await producer.stop()

    kafka = local.Kafka(local.run_dir())
    pid = kafka.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(wait_until_gone, pid)
    assert kafka.pid() is None
    status = await asyncio.to_thread(infra_command, "status")
    assert status.returncode != 0, "status must notice the dead broker"

    result = await asyncio.to_thread(infra_command, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert kafka.pid() not in (None, pid)

    records = await read_topic(infra, spec.name, len(sent))
    assert sorted(decode(r.value).event_id for r in records) == sorted(e.event_id for e in sent)
    assert await ensure_topics(infra.kafka_bootstrap, all_topics()) == []


def test_down_leaves_no_process_and_up_brings_everything_back(infra: InfraSettings) -> None:
    result = infra_command("down")
    assert result.returncode == 0, result.stdout + result.stderr
    for server in local.servers():
        assert server.pid() is None, server.name
        assert server.owned_pids() == [], server.name
    assert infra_command("status").returncode != 0

    result = infra_command("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(row.ready for row in local.status())
