"""The tests run on an instance of their own, so nothing they write reaches the demo or a
developer's running system: after `make test`, `make demo` once dead-lettered 3,581 decisions
the tests' bundle had made on the shared broker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from infra.local import run_dir
from services.common.settings import InfraSettings
from services.gateway.settings import GatewaySettings

REPO = Path(__file__).resolve().parents[3]
TEST_OFFSET = 11_000
#: Linux's default range of ports handed to outgoing connections
DEFAULT_EPHEMERAL = (32768, 60999)
PROBE = (
    "import json; from infra.local import run_dir;"
    " from services.common.settings import InfraSettings;"
    " from services.gateway.settings import GatewaySettings;"
    " from services.scoring.settings import ScoringSettings;"
    " i, g, s = InfraSettings(), GatewaySettings(), ScoringSettings();"
    " print(json.dumps([i.kafka_bootstrap, i.redis_url, i.postgres_dsn, g.port,"
    " g.scoring_target, s.grpc_port, str(run_dir())]))"
)


def _instance(**env: str) -> list[object]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ALAMA_PORT_OFFSET", "ALAMA_RUN_DIR")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=clean | {"ALAMA_DEV_MODE": "1"} | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout))


def test_this_session_is_on_the_test_instance() -> None:
    assert InfraSettings().kafka_bootstrap.endswith(":30092")
    assert GatewaySettings().port == 19080
    assert run_dir().name == ".run-test"


def test_the_test_instance_shares_no_port_and_no_folder_with_the_developers() -> None:
    developer = _instance()
    tests = _instance(ALAMA_PORT_OFFSET=str(TEST_OFFSET), ALAMA_RUN_DIR=str(REPO / ".run-test"))
    assert developer[:6] == [
        "127.0.0.1:19092",
        "redis://127.0.0.1:16379/0",
        "postgresql://alama:alama@127.0.0.1:15432/alama",
        8080,
        "127.0.0.1:50051",
        50051,
    ]
    ports = [re.findall(r":(\d+)", str(v)) or [str(v)] for v in developer[:6]]
    for mine, theirs in zip(
        ports, [re.findall(r":(\d+)", str(v)) or [str(v)] for v in tests[:6]], strict=True
    ):
        assert [int(p) + TEST_OFFSET for p in mine] == [int(p) for p in theirs]
    assert developer[6] != tests[6] and Path(str(tests[6])).name == ".run-test"


def _ports(values: list[object]) -> list[list[int]]:
    return [[int(p) for p in re.findall(r":(\d+)", str(v)) or [str(v)]] for v in values]


def test_make_test_runs_on_the_test_instance_and_make_down_stops_it() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "$(TEST_INSTANCE) $(PY) -m infra.local up" in recipe
    assert "$(TEST_INSTANCE) $(PY) -m pytest" in recipe
    assert f"ALAMA_PORT_OFFSET={TEST_OFFSET}" in makefile and ".run-test" in makefile
    assert re.search(r"^down:.*test-down", makefile, re.MULTILINE)
    assert "ALAMA_FEAST_PG_PORT ?=" not in makefile  # Feast follows the instance's settings


def _ephemeral_range() -> tuple[int, int]:
    path = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not path.is_file():
        return DEFAULT_EPHEMERAL
    low, high = (int(v) for v in path.read_text().split())
    return low, high


def test_no_test_instance_port_can_be_taken_by_an_outgoing_connection() -> None:
    """A port the test instance listens on inside the kernel's ephemeral range can be given to
    any outgoing connection first, and the server then cannot bind it (explanation once failed
    to start on 60052 that way). Every port the source names, with its replicas' (the supervisor
    shifts them by REPLICA_PORT_STEP; the chaos battery runs three scoring replicas), must lie
    outside the machine's range once shifted by the test offset."""
    from infra.supervisor import REPLICA_PORT_STEP

    named = {
        int(port)
        for folder in ("services", "infra", "bench", "simulator", "training")
        for path in (REPO / folder).rglob("*.py")
        for port in re.findall(r"service_port\((\d+)\)", path.read_text(encoding="utf-8"))
    }
    named |= {
        int(port)
        for port in re.findall(r'": (\d{4,5})', (REPO / "infra/supervisor.py").read_text())
    }
    assert {8080, 19092, 50051, 50052, 50053} <= named
    low, high = _ephemeral_range()
    inside = sorted(
        shifted
        for port in named
        for replica in range(3)
        if low <= (shifted := port + TEST_OFFSET + replica * REPLICA_PORT_STEP) <= high
        or shifted > 65535
    )
    assert inside == [], f"test-instance ports inside {low}-{high} or past 65535: {inside}"
