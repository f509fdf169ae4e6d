"""The outcomes service on the real broker and PostgreSQL, closing the loop of issue 13: the
challenger's shadow decisions joined to the champion's (the shadow ones first), each
application's gender and age band, loans that mature; the comparison at /shadow.json and
/shadow, the gate's rows at /shadow/pairs.json, and a champion that ranks far below its held-out
AUC alerted on model.performance_alerts once per metric, however often it is judged again."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from google.protobuf.message import Message
from prometheus_client.parser import text_string_to_metric_families

from services.common.decision import DecisionBands
from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.loan_terms import add_months
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.loans_pb2 import LoanDisbursed
from services.common.protos.alama.events.v1.models_pb2 import ModelPerformanceAlert
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.common.vocabulary import BANDS
from services.outcomes.alerts import AlertRule, raise_alerts
from services.outcomes.live import reference
from services.outcomes.settings import OutcomesSettings
from services.outcomes.wiring import open_store, serve
from training.contract import age_band

from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration

TENANT = "sacco-shadow"
CHAMPION = "v-champ"
CHALLENGER = "v-chall"
APPLIED = datetime(2025, 2, 20, 9, tzinfo=UTC)
DISBURSED = APPLIED + timedelta(days=2)
CUTS = DecisionBands(approve_below_pd=0.15, decline_at_or_above_pd=0.35)
MIN_LOANS = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Applicant:
    app: str
    gender: str
    age_band: str
    champion_pd: float
    challenger_pd: float
    defaulted: bool
    disbursed: bool


def _book(n: int, seed: int) -> list[Applicant]:
    """A seeded book where the challenger ranks well and the champion backwards (its PD lower
    for the defaulters), so the champion breaches its held-out AUC and ECE on matured loans."""
    rng = np.random.default_rng(seed)
    defaulted = rng.random(n) < 0.35
    challenger = np.where(defaulted, rng.uniform(0.2, 0.5, n), rng.uniform(0.02, 0.2, n))
    champion = np.where(defaulted, rng.uniform(0.02, 0.1, n), rng.uniform(0.1, 0.3, n))
    ages = age_band(pd.Series(rng.integers(19, 70, n)))
    genders = rng.choice(["female", "male"], n)
    disbursed = rng.random(n) < 0.8
    return [
        Applicant(
            app=f"sh-{seed}-{i}",
            gender=str(genders[i]),
            age_band=str(ages[i]),
            champion_pd=float(champion[i]),
            challenger_pd=float(challenger[i]),
            defaulted=bool(defaulted[i]),
            disbursed=bool(disbursed[i]),
        )
        for i in range(n)
    ]


def _decision(a: Applicant, version: str, pd_: float, shadow: bool) -> CreditDecision:
    decision = CreditDecision(
        decision_id=f"{'s' if shadow else 'd'}-{a.app}",
        application_id=a.app,
        member_id=f"m-{a.app}",
        model_version=version,
        probability_of_default=pd_,
        score=600,
        band=BANDS.value(str(CUTS.band(np.array([pd_]))[0])),  # type: ignore[arg-type]
        tenant_id=TENANT,
    )
    decision.decided_at.FromDatetime(APPLIED + timedelta(seconds=1))
    decision.applied_at.FromDatetime(APPLIED)
    return decision


def _application(a: Applicant) -> LoanApplicationSubmitted:
    application = LoanApplicationSubmitted(
        application_id=a.app,
        member_id=f"m-{a.app}",
        tenant_id=TENANT,
        amount_kes=30_000,
        term_months=3,
        attributes={"gender": a.gender, "age_band": a.age_band, "employer": "not kept"},
    )
    application.applied_at.FromDatetime(APPLIED)
    return application


def _loan_and_instalments(a: Applicant) -> tuple[LoanDisbursed, list[RepaymentRecorded]]:
    loan = LoanDisbursed(
        loan_id=f"L-{a.app}",
        application_id=a.app,
        member_id=f"m-{a.app}",
        tenant_id=TENANT,
        principal_kes=30_000,
        term_months=3,
    )
    loan.disbursed_at.FromDatetime(DISBURSED)
    instalments = []
    for k in range(1, 4):
        due = add_months(DISBURSED, k)
        days = 95 if a.defaulted and k == 2 else 0
        r = RepaymentRecorded(
            repayment_id=f"L-{a.app}:{due:%Y%m%d}",
            member_id=f"m-{a.app}",
            loan_id=f"L-{a.app}",
            amount_due_kes=10_000,
            amount_paid_kes=0 if days else 10_000,
            days_late=days,
            tenant_id=TENANT,
        )
        r.due_date.FromDatetime(due)
        r.recorded_at.FromDatetime(due + timedelta(days=min(days, 30) + 1))
        instalments.append(r)
    return loan, instalments


async def _send(infra: InfraSettings, topic: str, payloads: Sequence[Message]) -> None:
    producer = create_producer(infra, client_id="outcomes-shadow-it")
    await producer.start()
    try:
        sent = [
            await publish(
                producer, topic, wrap(p, producer="test", subject=getattr(p, "loan_id", ""))
            )
            for p in payloads
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _send_book(
    infra: InfraSettings, settings: OutcomesSettings, book: list[Applicant]
) -> None:
    """The challenger's shadow decisions before the champion's, as a slow champion allows."""
    await _send(
        infra,
        settings.shadow_topic,
        [_decision(a, CHALLENGER, a.challenger_pd, True) for a in book],
    )
    await _send(infra, settings.applications_topic, [_application(a) for a in book])
    await _send(
        infra,
        settings.decisions_topic,
        [_decision(a, CHAMPION, a.champion_pd, False) for a in book],
    )
    loans = [_loan_and_instalments(a) for a in book if a.disbursed]
    await _send(infra, settings.loans_topic, [loan for loan, _ in loans])
    await _send(infra, settings.repayments_topic, [r for _, rs in loans for r in rs])


async def _until(check: Callable[[], Awaitable[Any]], what: str, within: float = 30.0) -> Any:
    """Poll an async check (over HTTP) until it returns something other than None."""
    deadline = asyncio.get_running_loop().time() + within
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last is not None:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached in {within:.0f}s")


@pytest.fixture
async def settings(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[OutcomesSettings]:
    run = uuid.uuid4().hex[:10]
    names = ("decisions", "reviews", "loans", "repayments", "outcomes", "shadow", "applications")
    topics = [TopicSpec(f"test.outshadow.{name}.{run}", 3, 1) for name in names]
    alerts = TopicSpec(f"test.outshadow.alerts.{run}", 1, 1)
    await ensure_topics(infra, [*topics, alerts])
    (tmp_path / CHAMPION).mkdir()
    (tmp_path / CHAMPION / "metrics.json").write_text(
        json.dumps({"test": {"shipped": {"auc": 0.86, "ece": 0.007}}})
    )
    settings = OutcomesSettings(
        infra=infra,
        db_schema=f"outshadow_it_{run}",
        consumer_group=f"outshadow-it-{run}",
        decisions_topic=topics[0].name,
        review_outcomes_topic=topics[1].name,
        loans_topic=topics[2].name,
        repayments_topic=topics[3].name,
        outcomes_topic=topics[4].name,
        shadow_topic=topics[5].name,
        applications_topic=topics[6].name,
        performance_alerts_topic=alerts.name,
        bundle_root=str(tmp_path),
        metrics_port=_free_port(),
        performance_every_seconds=0.3,
        alert_min_loans=MIN_LOANS,
    )
    try:
        yield settings
    finally:
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


async def test_shadow_comparison_gate_rows_and_performance_alerts_on_the_real_broker(
    infra: InfraSettings, settings: OutcomesSettings
) -> None:
    book = _book(40, seed=13)
    matured = [a for a in book if a.disbursed]
    assert len(matured) >= MIN_LOANS
    base = f"http://127.0.0.1:{settings.metrics_port}"
    stop = asyncio.Event()
    running = asyncio.create_task(serve(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            await _send_book(infra, settings, book)

            async def report() -> dict[str, Any] | None:
                body = (await http.get("/shadow.json")).json()
                found = body["comparisons"]
                return found[0] if found and found[0]["matured"] == len(matured) else None

            c = await _until(report, "every matured loan in the comparison")
            assert (c["tenant_id"], c["champion"], c["challenger"]) == (
                TENANT,
                CHAMPION,
                CHALLENGER,
            )
            assert c["paired"] == len(book) and c["defaults"] == sum(a.defaulted for a in matured)
            same = sum(
                CUTS.band(np.array([a.champion_pd]))[0] == CUTS.band(np.array([a.challenger_pd]))[0]
                for a in book
            )
            assert c["agreement"] == pytest.approx(same / len(book))
            assert sum(sum(row.values()) for row in c["switches"].values()) == len(book)
            assert c["psi"] > 0.25  # the two models disagree wildly on who is risky
            assert c["challenger_on_matured"]["auc"]["value"] > 0.95
            assert c["champion_on_matured"]["auc"]["value"] < 0.2
            gender = next(f for f in c["fairness"] if f["attribute"] == "gender")
            assert sum(gender["applications"].values()) == len(book)
            ages = next(f for f in c["fairness"] if f["attribute"] == "age_band")
            assert set(ages["applications"]) == {a.age_band for a in book}

            gate = (await http.get("/shadow/pairs.json", params={"challenger": CHALLENGER})).json()
            assert set(gate) == {"challenger", "champion", "rows"}
            assert (gate["challenger"], gate["champion"]) == (CHALLENGER, CHAMPION)
            expected = {
                (a.defaulted, a.champion_pd, a.challenger_pd, a.gender, a.age_band) for a in matured
            }
            got = {
                (r["defaulted"], r["champion_pd"], r["challenger_pd"], r["gender"], r["age_band"])
                for r in gate["rows"]
            }
            assert got == expected
            assert {r["champion_band"] for r in gate["rows"]} <= {"approve", "review", "decline"}
            nobody = (await http.get("/shadow/pairs.json", params={"challenger": "v-none"})).json()
            assert nobody == {"challenger": "v-none", "champion": "", "rows": []}
            assert (await http.get("/shadow/pairs.json")).status_code == 422

            page = await http.get("/shadow")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert f"{CHALLENGER} (challenger) beside {CHAMPION} (champion)" in page.text

            # the champion ranks backwards: its month breaches AUC and ECE, one alert each
            records = await read_topic(infra, settings.performance_alerts_topic, 2, within=30)
            alerts = {
                decode(r.value, ModelPerformanceAlert).payload.metric: decode(
                    r.value, ModelPerformanceAlert
                ).payload
                for r in records
            }
            assert set(alerts) == {"auc_drop", "ece"}
            drop = alerts["auc_drop"]
            assert (drop.model_version, drop.month) == (CHAMPION, APPLIED.strftime("%Y-%m"))
            # judged every 0.3 s while repayments still arrive: the month alerts as soon as
            # enough of it has matured, not necessarily once all of it has
            assert MIN_LOANS <= drop.loans <= len(matured)
            assert drop.reference == 0.86 and drop.threshold == pytest.approx(0.95 * 0.86)
            assert drop.value < drop.threshold

            # more of the same month matures and is judged again (a whole refresh has run once
            # the shadow gauge counts it): still the same two alerts on the topic
            more = _book(6, seed=14)
            more = [Applicant(**{**a.__dict__, "disbursed": True}) for a in more]
            await _send_book(infra, settings, more)
            total = len(matured) + len(more)
            labels = {"tenant": TENANT, "champion": CHAMPION, "challenger": CHALLENGER}

            async def judged_again() -> bool | None:
                page = (await http.get("/metrics")).text
                for family in text_string_to_metric_families(page):
                    for sample in family.samples:
                        if sample.name == "alama_shadow_matured_loans" and sample.labels == labels:
                            return True if sample.value == total else None
                return None

            await _until(judged_again, "the later loans judged")
            again = await read_topic(infra, settings.performance_alerts_topic, 2, within=10)
            assert len(again) == 2
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)

    store = await open_store(settings)
    try:
        sent: list[str] = []

        async def send(topic: str, _envelope: EventEnvelope) -> None:
            sent.append(topic)

        published = await raise_alerts(
            store,
            lambda version: reference(Path(settings.bundle_root), version),
            AlertRule(min_loans=MIN_LOANS),
            send,
            settings.performance_alerts_topic,
        )
        assert published == [] and sent == []  # raised once, recorded: never again
        # only the gender and age band of an application are kept (and, for members' rights,
        # the member's keyed pseudonym and the application's time an erasure is dated against:
        # never the member id)
        columns = await store.pool.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'applicant_groups'",
            settings.db_schema,
        )
        assert {r["column_name"] for r in columns} == {
            "tenant_id",
            "application_id",
            "gender",
            "age_band",
            "member_ref",
            "applied_at",
        }
    finally:
        await store.pool.close()
