"""`simulate` against an in-process gateway double (no Kafka: applications only, via gateway)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from simulator.run import SimulationOptions, Via, simulate
from simulator.scenario import choose_applications
from simulator.settings import SimulatorSettings
from tests.unit.simulator.gateway_double import GatewayDouble
from training.contract import LoanBook


async def test_applications_reach_the_gateway_and_the_summary_counts_them(
    small_book: LoanBook, tmp_path: Path
) -> None:
    settings = SimulatorSettings(
        api_key=SecretStr("k-test"), webhook_secret=SecretStr("s-test"), concurrency=4
    )
    options = SimulationOptions(
        applications=30, rate=None, via=Via.GATEWAY, run_id="unit", history=False
    )
    rejected = choose_applications(small_book, 30, "unit")[7].member_id
    gateway = GatewayDouble(api_key="k-test", webhook_secret="s-test", reject_member=rejected)
    async with gateway.client() as client:
        summary = await simulate(settings, options, book=small_book, http_client=client)

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


async def test_a_send_that_raises_is_counted_by_its_name_not_lost(small_book: LoanBook) -> None:
    """An exception outside httpx's own (here the app's, which ASGITransport re-raises) once
    vanished with its task: the run reported 499 sent of 500 and no error at all."""
    settings = SimulatorSettings(
        api_key=SecretStr("k-test"), webhook_secret=SecretStr("s-test"), concurrency=4
    )
    options = SimulationOptions(applications=12, rate=None, run_id="boom", history=False)
    crashing = choose_applications(small_book, 12, "boom")[3].member_id
    gateway = GatewayDouble(api_key="k-test", webhook_secret="s-test", crash_member=crashing)
    async with gateway.client() as client:
        summary = await simulate(settings, options, book=small_book, http_client=client)
    assert summary.applications.sent == 12
    assert summary.applications.accepted == 11 == len(gateway.applications)
    assert summary.applications.errors == {"RuntimeError": 1}


async def test_a_wrong_api_key_is_counted_not_raised(small_book: LoanBook) -> None:
    settings = SimulatorSettings(api_key=SecretStr("wrong"), webhook_secret=SecretStr("s-test"))
    options = SimulationOptions(applications=5, rate=None, run_id="bad", history=False)
    gateway = GatewayDouble(api_key="right", webhook_secret="s-test")
    async with gateway.client() as client:
        summary = await simulate(settings, options, book=small_book, http_client=client)
    assert summary.applications.accepted == 0
    assert summary.applications.errors == {"401": 5}
    assert gateway.applications == []


async def test_an_imported_book_named_by_its_folder_is_played(
    sparse_book: LoanBook, tmp_path: Path
) -> None:
    """`book` in the settings (here a folder, as `--book` takes it) is what a run plays: a
    lender's book with empty optional columns and no history goes through the same run."""
    folder = tmp_path / "sparse-lender"
    sparse_book.save(folder)
    settings = SimulatorSettings(
        api_key=SecretStr("k-test"), webhook_secret=SecretStr("s-test"), book=str(folder)
    )
    options = SimulationOptions(
        applications=12, rate=None, run_id="lender", wait_for_features=False
    )
    gateway = GatewayDouble(api_key="k-test", webhook_secret="s-test")
    async with gateway.client() as client:
        summary = await simulate(settings, options, http_client=client)

    assert summary.book == "csv:sparse-lender"
    assert summary.book_members == len(sparse_book.members)
    assert summary.applications.accepted == 12 == len(gateway.applications)
    assert summary.webhooks.sent == summary.repayments.sent == summary.transactions_sent == 0
    assert all("national_id" not in body for body in gateway.applications)
    assert {a["application_id"] for a in gateway.applications} == set(summary.application_ids)
