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
    assert InfraSettings().kafka_bootstrap.endswith(":29092")
    assert GatewaySettings().port == 18080
    assert run_dir().name == ".run-test"


def test_the_test_instance_shares_no_port_and_no_folder_with_the_developers() -> None:
    developer = _instance()
    tests = _instance(ALAMA_PORT_OFFSET="10000", ALAMA_RUN_DIR=str(REPO / ".run-test"))
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
        assert [int(p) + 10_000 for p in mine] == [int(p) for p in theirs]
    assert developer[6] != tests[6] and Path(str(tests[6])).name == ".run-test"


def _ports(values: list[object]) -> list[list[int]]:
    return [[int(p) for p in re.findall(r":(\d+)", str(v)) or [str(v)]] for v in values]


def test_make_test_runs_on_the_test_instance_and_make_down_stops_it() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "$(TEST_INSTANCE) $(PY) -m infra.local up" in recipe
    assert "$(TEST_INSTANCE) $(PY) -m pytest" in recipe
    assert "ALAMA_PORT_OFFSET=10000" in makefile and ".run-test" in makefile
    assert re.search(r"^down:.*test-down", makefile, re.MULTILINE)
    assert "ALAMA_FEAST_PG_PORT ?=" not in makefile  # Feast follows the instance's settings
