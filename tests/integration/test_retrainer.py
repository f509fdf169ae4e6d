"""The retrainer on the real broker and PostgreSQL: applications and their matured outcomes are
kept, drift and performance alerts become triggers, and one run of the job answers them all
once enough outcomes matured; the cool-down holds back the next alert, a replay changes
nothing, and a job's refusal leaves the alerts open. The job here is a stand-in script that
records what it was handed (training itself is `training.retrain`, tested with the pipeline)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message

from services.common.envelope import wrap
from services.common.kafka import create_producer, publish
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import (
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
from services.common.protos.alama.events.v1.models_pb2 import ModelPerformanceAlert
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.retrainer.policy import Due
from services.retrainer.runner import Runner
from services.retrainer.settings import RetrainerSettings
from services.retrainer.wiring import open_store, serve
from training.retrain import LIVE_COLUMNS

pytestmark = pytest.mark.integration

TENANT = "sacco-retrain"
APPLIED = datetime(2026, 3, 2, 9, tzinfo=UTC)
JOB = """
import json, sys
import pandas as pd
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
# one thread: a process that exits right after a threaded parquet read sometimes aborts in
# pyarrow's teardown (exit 134, not 3; this test's CI failure); training.retrain exits past it
rows = pd.read_parquet(args["--live-rows"], use_threads=False)
with open(args["--result"] + ".args", "w") as f:
    json.dump({"args": args, "ids": sorted(rows["application_id"]),
               "defaults": int(rows["default_12m"].sum())}, f)
if args["--trigger"] == "manual":
    sys.exit(3)  # the job's refusal (2 is a usage error)
with open(args["--result"], "w") as f:
    json.dump({"model_version": "7", "bundle_version": "tiny-retrained", "live_rows": len(rows)}, f)
"""


@pytest.fixture
async def settings(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[RetrainerSettings]:
    run = uuid.uuid4().hex[:10]
    names = ("applications", "outcomes", "drift", "performance")
    topics = [TopicSpec(f"test.retrainer.{name}.{run}", 1, 1) for name in names]
    await ensure_topics(infra, topics)
    job = tmp_path / "job.py"
    job.write_text(JOB)
    settings = RetrainerSettings(
        infra=infra,
        db_schema=f"retrainer_it_{run}",
        consumer_group=f"retrainer-it-{run}",
        applications_topic=topics[0].name,
        outcomes_topic=topics[1].name,
        drift_alerts_topic=topics[2].name,
        performance_alerts_topic=topics[3].name,
        schedule_every_hours=0,
        cooldown_minutes=60,
        min_new_outcomes=3,
        check_every_seconds=0.2,
        work_dir=str(tmp_path / "runs"),
        training_command=[sys.executable, str(job)],
        profile="tiny",
        metrics_port=0,
    )
    try:
        yield settings
    finally:
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


def _application(n: int) -> LoanApplicationSubmitted:
    a = LoanApplicationSubmitted(
        application_id=f"A{n}",
        member_id=f"M{n}",
        product=LoanProduct.LOAN_PRODUCT_EMERGENCY,
        amount_kes=10_000 + n,
        term_months=6,
        tenant_id=TENANT,
    )
    a.applied_at.FromDatetime(APPLIED + timedelta(days=n))
    return a


def _outcome(n: int, defaulted: bool) -> LoanOutcome:
    o = LoanOutcome(loan_id=f"L{n}", application_id=f"A{n}", tenant_id=TENANT, defaulted=defaulted)
    o.outcome_at.FromDatetime(APPLIED + timedelta(days=n + 200))
    return o


def _drift(n: int) -> DriftAlert:
    d = DriftAlert(alert_id=f"d{n}", model_version="champ", subject="mm_inflow_sum_30d", psi=0.4)
    d.raised_at.FromDatetime(datetime.now(UTC) - timedelta(minutes=10 - n))
    return d


async def _send(infra: InfraSettings, topic: str, payloads: Sequence[Message]) -> None:
    producer = create_producer(infra, client_id="retrainer-it")
    await producer.start()
    try:
        for p in payloads:
            await (await publish(producer, topic, wrap(p, producer="test", subject="s")))
    finally:
        await producer.stop()


async def test_alerts_train_one_challenger_on_the_matured_live_rows(
    infra: InfraSettings, settings: RetrainerSettings
) -> None:
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop))
    store = await open_store(settings)
    try:
        # an outcome for an application never seen (A9) cannot be learnt from: no features key
        await _send(infra, settings.applications_topic, [_application(n) for n in range(4)])
        await _send(
            infra,
            settings.outcomes_topic,
            [_outcome(0, True), _outcome(1, False), _outcome(9, False)],
        )
        performance = ModelPerformanceAlert(
            alert_id="p1", model_version="champ", metric="auc_drop", value=0.61, month="2026-03"
        )
        performance.raised_at.FromDatetime(datetime.now(UTC))
        await _send(infra, settings.drift_alerts_topic, [_drift(1), _drift(2)])
        await _send(infra, settings.performance_alerts_topic, [performance])
        await asyncio.sleep(2)
        assert await store.runs() == [], "2 matured outcomes are fewer than the 3 needed"
        await _send(infra, settings.outcomes_topic, [_outcome(2, False), _outcome(1, True)])

        async with asyncio.timeout(60):
            while not (runs := await store.runs()) or runs[0].status == "running":  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        (run,) = runs
        assert (run.status, run.trigger) == ("registered", "drift")
        assert (run.model_version, run.bundle_version, run.live_rows) == ("7", "tiny-retrained", 3)
        assert "3 open alert(s) (drift, performance)" in run.reason
        assert await store.open_triggers() == []
        handed = json.loads((Path(settings.work_dir) / run.run_id / "result.json.args").read_text())
        # the first outcome of an application stands (a later one for A1 is a replay)
        assert handed["ids"] == ["A0", "A1", "A2"] and handed["defaults"] == 1
        assert handed["args"]["--trigger"] == "drift" and handed["args"]["--profile"] == "tiny"

        # within the cool-down a new alert waits, open; a replay of kept events changes nothing
        await _send(infra, settings.drift_alerts_topic, [_drift(3)])
        await _send(infra, settings.applications_topic, [_application(0)])
        async with asyncio.timeout(30):
            while len(await store.open_triggers()) < 1:  # noqa: ASYNC110 - polled state
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        assert len(await store.runs()) == 1
        kept = await store.labelled()
        assert len(kept) == 3
        assert list(kept.columns) == list(LIVE_COLUMNS)  # what training.retrain reads
    finally:
        stop.set()
        await service
        await store.pool.close()


async def test_a_refused_run_leaves_the_alerts_open_and_a_stopped_run_is_marked_failed(
    settings: RetrainerSettings,
) -> None:
    store = await open_store(settings)
    try:
        await store.add_triggers([])
        runner = Runner(store, settings)
        await runner.restore()
        status = await runner.run(Due("manual", "asked by hand", ()))
        (run,) = await store.runs()
        assert (status, run.status) == ("refused", "refused"), run.detail  # exit code, log tail
        assert run.detail is not None and run.detail["exit"] == 3

        await store.start_run("left-behind", "schedule", "a stopped retrainer", datetime.now(UTC))
        again = Runner(store, settings)
        await again.restore()
        statuses = {r.run_id: r.status for r in await store.runs()}
        assert statuses["left-behind"] == "failed"
        assert again.last_run_at is not None and again.last_success_at is None
    finally:
        await store.pool.close()
