"""The chaos battery at tiny scale: every fault, on the test instance's own servers.

Each fault (kill -9 of each service, a broker restart, Redis and PostgreSQL stopped for 10 s,
scoring scaled to 3 replicas with one added and one removed mid-stream) runs under load; after
each, every application the system took has exactly one decision, one explanation and one audit
trail, every synchronous decision a caller was told is audited, the chain verifies and every
consumer group's lag is back at 0. `make chaos` runs the same battery larger.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import chaos
from infra import supervisor
from services.common.settings import InfraSettings
from tests.conftest import TinyModel

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(infra: InfraSettings, tiny_model: TinyModel) -> Iterator[chaos.System]:
    run = uuid.uuid4().hex[:8]
    env = chaos.system_env(run, tiny_model.bundle, tiny_model.feast_env)
    system = chaos.start_system(infra, env, run)
    try:
        yield system
    finally:
        supervisor.down(echo=lambda _line: None)


@pytest.mark.timeout(1800)  # ten faults, each waiting for the system to catch up
def test_every_fault_loses_and_duplicates_nothing(
    system: chaos.System, tiny_model: TinyModel, tmp_path: Path
) -> None:
    results = asyncio.run(
        chaos.run_battery(system, tiny_model.book, chaos.SCALES["tiny"], echo=print)
    )
    report = chaos.report(results, "tiny", "tiny-model")
    (tmp_path / "chaos.json").write_text(json.dumps(report, indent=2))
    print(chaos.markdown(report))
    assert [r.fault for r in results] == list(chaos.FAULTS)
    for r in results:
        assert r.applications == chaos.SCALES["tiny"].applications, r
        assert r.lost == 0 and r.duplicated == 0 and r.told_unaudited == 0, r
        assert r.chain_verified and r.lags_zero, r
    assert report["all_passed"]
