"""The outcomes service on the real broker and PostgreSQL: disbursements and repayments joined
to the decisions that approved them, in whatever order the topics deliver them; each loan's
outcome published once, by the data contract's default; live performance from what matured."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message

from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.loan_terms import add_months
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.loans_pb2 import LoanDisbursed, LoanOutcome
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.outcomes.live import refresh
from services.outcomes.settings import OutcomesSettings
from services.outcomes.store import DECLINE
from services.outcomes.wiring import open_store, serve

from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration

TENANT = "sacco-outcomes"
DISBURSED = datetime(2025, 3, 10, 9, tzinfo=UTC)


@pytest.fixture
async def settings(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[OutcomesSettings]:
    run = uuid.uuid4().hex[:10]
    names = ("decisions", "reviews", "loans", "repayments", "outcomes")
    topics = [TopicSpec(f"test.outcomes.{name}.{run}", 3, 1) for name in names]
    await ensure_topics(infra, topics)
    settings = OutcomesSettings(
        infra=infra,
        db_schema=f"outcomes_it_{run}",
        consumer_group=f"outcomes-it-{run}",
        decisions_topic=topics[0].name,
        review_outcomes_topic=topics[1].name,
        loans_topic=topics[2].name,
        repayments_topic=topics[3].name,
        outcomes_topic=topics[4].name,
        bundle_root=str(tmp_path),
        metrics_port=0,
    )
    try:
        yield settings
    finally:
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


def _decision(app: str, band: int, pd: float) -> CreditDecision:
    decision = CreditDecision(
        decision_id=f"d-{app}",
        application_id=app,
        member_id=f"m-{app}",
        model_version="v-out",
        probability_of_default=pd,
        score=600,
        band=band,  # type: ignore[arg-type]
        tenant_id=TENANT,
    )
    decision.decided_at.FromDatetime(DISBURSED - timedelta(days=1))
    decision.applied_at.FromDatetime(DISBURSED - timedelta(days=2))
    return decision


def _loan(app: str, term: int = 12) -> LoanDisbursed:
    loan = LoanDisbursed(
        loan_id=f"L-{app}",
        application_id=app,
        member_id=f"m-{app}",
        tenant_id=TENANT,
        principal_kes=50_000,
        term_months=term,
    )
    loan.disbursed_at.FromDatetime(DISBURSED)
    return loan


def _instalments(app: str, months: int, late: dict[int, int] | None = None) -> list[Message]:
    out: list[Message] = []
    for k in range(1, months + 1):
        due = add_months(DISBURSED, k)
        days = (late or {}).get(k, 0)
        r = RepaymentRecorded(
            repayment_id=f"L-{app}:{due:%Y%m%d}",
            member_id=f"m-{app}",
            loan_id=f"L-{app}",
            amount_due_kes=5_000,
            amount_paid_kes=5_000 if days < 90 else 0,
            days_late=days,
            tenant_id=TENANT,
        )
        r.due_date.FromDatetime(due)
        r.recorded_at.FromDatetime(due + timedelta(days=min(days, 30) + 1))
        out.append(r)
    return out


async def _send(infra: InfraSettings, topic: str, payloads: Sequence[Message]) -> None:
    producer = create_producer(infra, client_id="outcomes-it")
    await producer.start()
    try:
        for payload in payloads:
            subject = getattr(payload, "application_id", "") or getattr(payload, "loan_id", "")
            await (await publish(producer, topic, wrap(payload, producer="test", subject=subject)))
    finally:
        await producer.stop()


async def test_loans_are_judged_once_by_the_contracts_default_in_any_order(
    infra: InfraSettings, settings: OutcomesSettings
) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(serve(settings, stop))
    try:
        # repayments first, then the loans, the decisions last: nothing can be judged early
        await _send(
            infra,
            settings.repayments_topic,
            [
                *_instalments("a-good", 12, {3: 20}),
                *_instalments("a-bad", 6, {5: 95}),
                *_instalments("a-young", 4),  # still maturing
                *_instalments("a-reviewed", 6),
            ],
        )
        await _send(
            infra,
            settings.loans_topic,
            [_loan("a-good"), _loan("a-bad"), _loan("a-young"), _loan("a-reviewed", term=6)],
        )
        await asyncio.sleep(1.0)
        store = await open_store(settings)
        try:
            assert await store.matured() == []  # no decision yet: nothing judged
        finally:
            await store.pool.close()
        review = ReviewOutcome(
            review_id="r-1",
            decision_id="d-a-reviewed",
            application_id="a-reviewed",
            tenant_id=TENANT,
            original_band=DecisionBand.DECISION_BAND_REVIEW,
            final_band=DecisionBand.DECISION_BAND_APPROVE,
        )
        await _send(
            infra,
            settings.decisions_topic,
            [
                _decision("a-good", DecisionBand.DECISION_BAND_APPROVE, 0.05),
                _decision("a-bad", DecisionBand.DECISION_BAND_APPROVE, 0.10),
                _decision("a-young", DecisionBand.DECISION_BAND_APPROVE, 0.08),
                _decision("a-reviewed", DecisionBand.DECISION_BAND_REVIEW, 0.2),
                _decision("a-declined", DecisionBand.DECISION_BAND_DECLINE, 0.5),
            ],
        )
        await _send(infra, settings.review_outcomes_topic, [review])
        records = await read_topic(infra, settings.outcomes_topic, 3, within=60)
        outcomes = {decode(r.value, LoanOutcome).payload.application_id: r for r in records}
        assert set(outcomes) == {"a-good", "a-bad", "a-reviewed"}
        bad = decode(outcomes["a-bad"].value, LoanOutcome)
        assert bad.payload.defaulted and bad.payload.max_days_late == 95
        assert bad.payload.outcome_at.ToDatetime(tzinfo=UTC) == add_months(
            DISBURSED, 5
        ) + timedelta(days=90)
        good = decode(outcomes["a-good"].value, LoanOutcome).payload
        assert not good.defaulted and good.model_version == "v-out"
        assert good.probability_of_default == 0.05 and good.instalments_observed == 12
        reviewed = decode(outcomes["a-reviewed"].value, LoanOutcome).payload
        assert reviewed.band == DecisionBand.DECISION_BAND_REVIEW
        assert reviewed.final_band in (
            DecisionBand.DECISION_BAND_REVIEW,
            DecisionBand.DECISION_BAND_APPROVE,
        )  # the review may land after the loan was judged; the model's band is what is scored

        # a replay of everything publishes nothing new; the young loan matures later
        await _send(infra, settings.repayments_topic, _instalments("a-bad", 6, {5: 95}))
        await _send(infra, settings.repayments_topic, _instalments("a-young", 12)[4:])
        more = await read_topic(infra, settings.outcomes_topic, 4, within=60)
        ids = [decode(r.value, LoanOutcome).payload.loan_id for r in more]
        assert sorted(ids) == ["L-a-bad", "L-a-good", "L-a-reviewed", "L-a-young"]
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)

    store = await open_store(settings)
    try:
        months = await refresh(store, Path(settings.bundle_root))
        (key,) = months
        assert key == (TENANT, "v-out", (DISBURSED - timedelta(days=2)).strftime("%Y-%m"))
        month = months[key]
        assert (month.matured, month.defaults) == (4, 1)
        # the defaulter's PD (0.10) is above two of the three performers' (0.05, 0.08; not 0.2)
        assert month.auc.value == pytest.approx(2 / 3)
        assert await store.declined_without_loan() == [(TENANT, "v-out", 1)]
        # counted every refresh: from the declines' own index, never a scan of every decision
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) SELECT d.tenant_id, d.model_version, count(*)"
                f" FROM {settings.db_schema}.decisions d"
                f" WHERE coalesce(d.final_band, d.band) = {DECLINE}"
                " GROUP BY d.tenant_id, d.model_version"
            )
        assert "decisions_declined" in json.dumps(plan)
    finally:
        await store.pool.close()
