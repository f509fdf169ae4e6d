"""`simulate` against an in-process gateway double (no Kafka: applications only, via gateway)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from services.simulator.run import SimulationOptions, Via, simulate
from services.simulator.scenario import choose_applications
from services.simulator.settings import SimulatorSettings
from tests.unit.simulator.gateway_double import GatewayDouble
from training.world import World


async def test_applications_reach_the_gateway_and_the_summary_counts_them(
    small_world: World, tmp_path: Path
) -> None:
    settings = SimulatorSettings(
        api_key=SecretStr("k-test"), webhook_secret=SecretStr("s-test"), concurrency=4
    )
    options = SimulationOptions(
        applications=30, rate=None, via=Via.GATEWAY, run_id="unit", history=False
    )
    rejected = choose_applications(small_world, 30, "unit")[7].member_id
    gateway = GatewayDouble(api_key="k-test", webhook_secret="s-test", reject_member=rejected)
    async with gateway.client() as client:
        summary = await simulate(settings, options, world=small_world, http_client=client)

    assert summary.run_id == "unit"
    assert summary.applications.sent == 30
    assert summary.applications.accepted == 29 == len(gateway.applications)
    assert summary.applications.errors == {"422": 1}
    assert summary.webhooks.sent == summary.repayments.sent == 0
    assert summary.features_wait is None
    assert len(summary.application_ids) == 30
    assert all(i.startswith("unit-A") for i in summary.application_ids)
    assert summary.first_application_id == summary.application_ids[0]
    assert {a["application_id"] for a in gateway.applications} < set(summary.application_ids)

    path = tmp_path / "summary.json"
    summary.write_json(path)
    written = json.loads(path.read_text())
    assert written["application_ids"] == summary.application_ids
    assert written["applications"]["errors"] == {"422": 1}


async def test_a_wrong_api_key_is_counted_not_raised(small_world: World) -> None:
    settings = SimulatorSettings(api_key=SecretStr("wrong"), webhook_secret=SecretStr("s-test"))
    options = SimulationOptions(applications=5, rate=None, run_id="bad", history=False)
    gateway = GatewayDouble(api_key="right", webhook_secret="s-test")
    async with gateway.client() as client:
        summary = await simulate(settings, options, world=small_world, http_client=client)
    assert summary.applications.accepted == 0
    assert summary.applications.errors == {"401": 5}
    assert gateway.applications == []
