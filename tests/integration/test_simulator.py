"""The simulator against the real broker and an in-process gateway that checks every signature."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pandas as pd
import pytest
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from services.common.envelope import decode
from services.common.kafka import create_consumer
from services.common.members import member_key
from services.common.protos.alama.events.v1.applications_pb2 import (
    CHANNEL_UNSPECIFIED,
    LoanApplicationSubmitted,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from simulator.lag import wait_for_group
from simulator.run import SimulationOptions, Summary, Via, simulate
from simulator.settings import SimulatorSettings
from tests.unit.simulator.gateway_double import GatewayDouble
from training.contract import LoanBook
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration

API_KEY = "it-partner-key"
SECRET = "it-webhook-secret"


@dataclass(frozen=True)
class ScratchTopics:
    applications: str
    repayments: str
    mobile_money: str


@pytest.fixture(scope="module")
def book() -> LoanBook:
    return loan_book_from_world(generate_world(200, seed=9))


@pytest.fixture
async def scratch(infra: InfraSettings) -> AsyncIterator[ScratchTopics]:
    """Fresh topics standing in for loan.applications, core.repayments, mobile_money.*."""
    prefix = f"test.sim-{uuid.uuid4().hex[:10]}"
    specs = [TopicSpec(f"{prefix}.{n}", partitions=3, retention_days=1) for n in ("a", "r", "m")]
    await ensure_topics(infra.kafka_bootstrap, specs)
    yield ScratchTopics(*(s.name for s in specs))


def settings_for(infra: InfraSettings, topics: ScratchTopics, group: str) -> SimulatorSettings:
    return SimulatorSettings(
        infra=infra,
        api_key=SecretStr(API_KEY),
        webhook_secret=SecretStr(SECRET),
        applications_topic=topics.applications,
        repayments_topic=topics.repayments,
        mobile_money_topic=topics.mobile_money,
        feature_group=group,
        concurrency=8,
        webhook_lanes=3,
    )


def trace_id(record_headers: list[tuple[str, bytes]] | dict[str, str]) -> str:
    headers = dict(record_headers)
    value = headers["traceparent"]
    return (value.decode() if isinstance(value, bytes) else value).split("-")[1]


async def run(
    settings: SimulatorSettings, options: SimulationOptions, book: LoanBook, gateway: GatewayDouble
) -> Summary:
    async with gateway.client() as client:
        return await simulate(settings, options, book=book, http_client=client)


async def test_history_and_kafka_applications_are_complete_signed_and_idempotent(
    infra: InfraSettings, scratch: ScratchTopics, book: LoanBook, spans: InMemorySpanExporter
) -> None:
    settings = settings_for(infra, scratch, group=f"unused-{uuid.uuid4().hex}")
    run_id = f"it{uuid.uuid4().hex[:6]}"
    options = SimulationOptions(
        applications=20,
        rate=200.0,
        via=Via.KAFKA,
        run_id=run_id,
        webhook_batch=100,
        wait_for_features=False,
    )
    gateway = GatewayDouble(api_key=API_KEY, webhook_secret=SECRET)

    first = await run(settings, options, book, gateway)
    second = await run(settings, options, book, gateway)

    # webhooks: every history transaction arrived, signed, within the batch limit, twice
    assert gateway.bad_signatures == 0
    assert first.transactions_sent > 0
    assert max(gateway.delivery_sizes) <= 100
    assert (
        first.webhooks.items_accepted == second.webhooks.items_accepted == first.transactions_sent
    )
    assert first.webhooks.errors == {}
    assert len(gateway.transactions) == 2 * first.transactions_sent
    assert gateway.applications == []  # they went to Kafka

    # repayments: every envelope decodes; a second run repeats the same event ids
    n_repayments = first.repayments.accepted
    assert n_repayments > 0 and second.repayments.accepted == n_repayments
    records = await read_topic(infra, scratch.repayments, 2 * n_repayments)
    events = [decode(r.value, RepaymentRecorded) for r in records]
    assert all(e.envelope.producer == "core-banking" for e in events)
    # keyed (so partitioned) by the tenant's member, as the feature store's tables are
    assert all(
        r.key.decode() == e.envelope.subject == member_key(settings.tenant, e.payload.member_id)
        and e.payload.tenant_id == settings.tenant
        for r, e in zip(records, events, strict=True)
    )
    ids = Counter(e.event_id for e in events)
    assert len(ids) == n_repayments and set(ids.values()) == {2}
    assert len({e.payload.repayment_id for e in events}) == n_repayments

    # applications: the run's ids, deterministic event ids, one trace per application
    assert first.applications.accepted == 20 and first.applications.errors == {}
    assert first.application_ids == second.application_ids
    app_records = await read_topic(infra, scratch.applications, 40)
    apps = [decode(r.value, LoanApplicationSubmitted) for r in app_records]
    assert {a.payload.application_id for a in apps} == set(first.application_ids)
    app_ids = Counter(a.event_id for a in apps)
    assert len(app_ids) == 20 and set(app_ids.values()) == {2}
    first_run_traces = {
        a.payload.application_id: trace_id(r.headers)
        for r, a in zip(app_records, apps, strict=True)
    }
    assert len(set(first_run_traces.values())) == 20
    assert first.achieved_rate is not None and first.achieved_rate > 50


async def test_applications_via_the_gateway_each_start_a_trace(
    infra: InfraSettings, scratch: ScratchTopics, book: LoanBook, spans: InMemorySpanExporter
) -> None:
    settings = settings_for(infra, scratch, group=f"unused-{uuid.uuid4().hex}")
    options = SimulationOptions(
        applications=15, rate=100.0, via=Via.GATEWAY, wait_for_features=False
    )
    gateway = GatewayDouble(api_key=API_KEY, webhook_secret=SECRET)

    summary = await run(settings, options, book, gateway)

    assert summary.applications.accepted == 15 == len(gateway.applications)
    assert {a["application_id"] for a in gateway.applications} == set(summary.application_ids)
    assert all(i.startswith(f"{summary.run_id}-") for i in summary.application_ids)
    assert len({trace_id(h) for h in gateway.application_headers}) == 15
    assert summary.repayments.accepted > 0 and summary.webhooks.errors == {}


async def committing_consumer(
    infra: InfraSettings, topics: ScratchTopics, group: str, stop: asyncio.Event
) -> int:
    """A stand-in for the feature store: consume both history topics, commit after each batch."""
    consumer = create_consumer(
        infra, topics.repayments, topics.mobile_money, group_id=group, client_id="fake-features"
    )
    await consumer.start()
    seen = 0
    try:
        while not stop.is_set():
            batch: dict[object, list[ConsumerRecord]] = await consumer.getmany(timeout_ms=200)
            if batch:
                seen += sum(len(records) for records in batch.values())
                await consumer.commit()
    finally:
        await consumer.stop()
    return seen


async def test_the_features_wait_tracks_the_consumer_group_lag(
    infra: InfraSettings, scratch: ScratchTopics, book: LoanBook
) -> None:
    group = f"features-{uuid.uuid4().hex}"
    settings = settings_for(infra, scratch, group=group)
    gateway = GatewayDouble(api_key=API_KEY, webhook_secret=SECRET)

    # nobody consumes yet: the wait gives up after its timeout and reports the lag
    lagging = await run(
        settings,
        SimulationOptions(applications=5, rate=None, via=Via.KAFKA, wait_timeout_seconds=1.0),
        book,
        gateway,
    )
    assert lagging.features_wait is not None
    assert lagging.features_wait.caught_up is False
    assert lagging.features_wait.lag == lagging.repayments.accepted > 0

    # a waiter started first returns once the group has committed to the end of both topics
    waiter = asyncio.create_task(
        wait_for_group(
            infra, group, [scratch.repayments, scratch.mobile_money], within=60, poll_interval=0.2
        )
    )
    stop = asyncio.Event()
    consumer = asyncio.create_task(committing_consumer(infra, scratch, group, stop))
    try:
        waited = await asyncio.wait_for(waiter, timeout=90)
        assert waited.caught_up and waited.lag.total == 0

        # with the group consuming, a run's own wait sees its history consumed, then goes on
        rerun = await run(
            settings,
            SimulationOptions(
                applications=5,
                rate=None,
                via=Via.KAFKA,
                run_id=lagging.run_id,
                wait_timeout_seconds=60,
            ),
            book,
            gateway,
        )
    finally:
        stop.set()
        seen = await asyncio.wait_for(consumer, timeout=30)
    assert rerun.features_wait is not None
    assert rerun.features_wait.caught_up is True and rerun.features_wait.lag == 0
    assert rerun.applications.accepted == 5
    assert rerun.application_ids == lagging.application_ids
    assert seen == lagging.repayments.accepted + rerun.repayments.accepted


async def test_an_imported_book_with_empty_optional_columns_replays_through_kafka(
    infra: InfraSettings, scratch: ScratchTopics, book: LoanBook
) -> None:
    """A lender's book without national ids, channels or declared incomes, named by its source
    (no world seed): its applications and repayments reach the broker as valid events."""
    apps = book.applications.assign(channel=None)
    apps["declared_monthly_income_kes"] = pd.array([None] * len(apps), dtype="Float64")
    lender = LoanBook(
        tables={
            **book.tables,
            "members": book.members.assign(national_id=None, phone_number=None),
            "applications": apps,
        },
        source="csv:it-lender",
        cutoff=book.cutoff,
    )
    settings = settings_for(infra, scratch, group=f"unused-{uuid.uuid4().hex}")
    options = SimulationOptions(
        applications=10, rate=None, via=Via.KAFKA, run_id="lender", wait_for_features=False
    )
    summary = await run(
        settings, options, lender, GatewayDouble(api_key=API_KEY, webhook_secret=SECRET)
    )

    assert summary.book == "csv:it-lender"
    assert summary.applications.accepted == 10 and summary.repayments.errors == {}
    records = await read_topic(infra, scratch.applications, 10)
    payloads = [decode(r.value, LoanApplicationSubmitted).payload for r in records]
    assert {p.application_id for p in payloads} == set(summary.application_ids)
    assert all(p.national_id_hash == "" and p.channel == CHANNEL_UNSPECIFIED for p in payloads)
    assert all(p.declared_monthly_income_kes == 0.0 and p.amount_kes > 0 for p in payloads)
    assert summary.repayments.accepted > 0
    repayments = await read_topic(infra, scratch.repayments, summary.repayments.accepted)
    assert len({decode(r.value, RepaymentRecorded).event_id for r in repayments}) == len(repayments)
