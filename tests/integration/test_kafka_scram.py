"""SASL/SCRAM end to end: a broker of this test's own, started by infra.local with
ALAMA_LOCAL_KAFKA_SCRAM=1, admits the shared clients with the right password and refuses them with
a wrong one.

The broker runs in its own run folder and on its own ports (ALAMA_PORT_OFFSET in the subprocess
environment), so neither the developer's broker nor the test instance's is touched; the test stops
it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from services.common.kafka import create_consumer, create_producer
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics

REPO = Path(__file__).resolve().parents[2]
#: moves this broker's ports (PLAINTEXT, controller, SCRAM) clear of the developer's and the
#: test instance's (offsets 0 and 10,000)
OFFSET = 23_000
PLAIN_PORT, CONTROLLER_PORT, SCRAM_PORT = 19092 + OFFSET, 19093 + OFFSET, 19094 + OFFSET
USER = "alama-it"
PASSWORD = "it-scram-" + uuid.uuid4().hex

#: started, ready on PLAINTEXT (what `infra.local up` waits for), and then answering a metadata
#: request over SCRAM too: under make test's load the SCRAM listener once refused the test's
#: first connection although the PLAINTEXT probe had passed
START = """
import asyncio, sys, time
from aiokafka import AIOKafkaClient
from infra.local import KAFKA_SCRAM_PORT, Kafka, InfraError, _wait, run_dir
from services.common.kafka_security import client_options
from services.common.settings import InfraSettings
assert KAFKA_SCRAM_PORT == int(sys.argv[1]), KAFKA_SCRAM_PORT
scram = InfraSettings(
    kafka_bootstrap=f"127.0.0.1:{KAFKA_SCRAM_PORT}",
    kafka_security_protocol="SASL_PLAINTEXT",
    kafka_sasl_mechanism="SCRAM-SHA-512",
)

async def over_scram() -> bool:
    client = AIOKafkaClient(**client_options(scram), request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()

kafka = Kafka(run_dir())
kafka.start()
deadline = time.monotonic() + 180
try:
    _wait(kafka, deadline)
    while not asyncio.run(over_scram()):
        if time.monotonic() > deadline:
            raise InfraError("the SCRAM listener never answered")
        time.sleep(0.5)
except InfraError as exc:
    kafka.stop()
    sys.exit(str(exc))
"""
STOP = "from infra.local import Kafka, run_dir; Kafka(run_dir()).stop()"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraSettings]:
    busy = [p for p in (PLAIN_PORT, CONTROLLER_PORT, SCRAM_PORT) if not _port_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken; this test's broker needs them", pytrace=False)
    env = os.environ | {
        "ALAMA_RUN_DIR": str(tmp_path_factory.mktemp("kafka-scram")),
        "ALAMA_PORT_OFFSET": str(OFFSET),
        "ALAMA_LOCAL_KAFKA_SCRAM": "1",
        "ALAMA_KAFKA_USERNAME": USER,
        "ALAMA_KAFKA_PASSWORD": PASSWORD,
    }

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
        )

    started = run(START, str(SCRAM_PORT))
    try:
        if started.returncode != 0:
            pytest.fail(f"the SCRAM broker did not start:\n{started.stderr}", pytrace=False)
        yield InfraSettings(
            kafka_bootstrap=f"127.0.0.1:{SCRAM_PORT}",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_username=USER,
            kafka_password=SecretStr(PASSWORD),
        )
    finally:
        stopped = run(STOP)
        assert stopped.returncode == 0, stopped.stderr
        assert _port_free(PLAIN_PORT) and _port_free(SCRAM_PORT)


async def test_the_right_password_produces_and_consumes(scram_broker: InfraSettings) -> None:
    spec = TopicSpec(f"it.scram.{uuid.uuid4().hex[:8]}", 1, 1)
    await ensure_topics(scram_broker, [spec])  # the admin client authenticates too
    producer = create_producer(scram_broker, client_id="it-scram")
    await producer.start()
    try:
        await producer.send_and_wait(spec.name, b"over scram", key=b"k")
    finally:
        await producer.stop()
    consumer = create_consumer(scram_broker, spec.name, group_id="it-scram", client_id="it-scram")
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                values = [r.value for records in batches.values() for r in records]
                if values:
                    break
    finally:
        await consumer.stop()
    assert values == [b"over scram"]


async def test_a_wrong_password_is_refused(
    scram_broker: InfraSettings, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = scram_broker.model_copy(update={"kafka_password": SecretStr("not-" + PASSWORD)})
    producer = create_producer(wrong, client_id="it-scram-wrong")
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaError):
        async with asyncio.timeout(60):
            await producer.start()
    await producer.stop()
    # aiokafka reports only "unable to bootstrap"; the broker's reason is in its log line
    assert "SaslAuthenticationFailed" in caplog.text
