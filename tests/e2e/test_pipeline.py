"""The whole system as separate processes on the real Kafka, Redis and PostgreSQL.

Fresh consumer groups start at the topics' current end, so whatever the demo or earlier runs
left on the shared topics never reaches the services under test or the counts below.

The services run under the supervisor exactly as `make up` starts them, and the retrainer as
`up retrainer` does (it answers members' erasure and export requests; it never trains here); the
simulator plays core banking and the mobile-money provider. One module-scoped system serves every
test here: 500 applications end to end, one trace per application, the audit chain's
verification, and a SIGKILL of scoring in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from infra import local, supervisor
from services.audit.reader import AuditedEvent, AuditReader
from services.audit.settings import AuditSettings
from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.member_rights import tenant_member_ref
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter
from services.common.redis_store import create_redis
from services.common.settings import InfraSettings, service_port
from services.common.topics import (
    APPEALS,
    CREDIT_DECISIONS,
    CREDIT_EXPLANATIONS,
    DRIFT_ALERTS,
    LOAN_APPLICATIONS,
    LOAN_OUTCOMES,
    LOANS,
    MEMBER_ERASURES,
    MEMBER_ERASURES_VOUCHED,
    MEMBER_EXPORTS,
    MOBILE_MONEY_TRANSACTIONS,
    MODEL_PERFORMANCE_ALERTS,
    REPAYMENTS,
    REVIEW_OUTCOMES,
    all_topics,
)
from services.common.vocabulary import BANDS
from services.console.store import ConsoleStore
from services.outcomes.settings import OutcomesSettings
from services.outcomes.store import OutcomesStore
from simulator.lag import end_offsets, start_groups_at_the_end, wait_for_group
from simulator.payloads import application_body
from simulator.run import SimulationOptions, Summary, Via, simulate
from simulator.scenario import build_scenario
from simulator.settings import SimulatorSettings
from tests.conftest import TinyModel

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
N_APPLICATIONS = 500
API_KEY = {"X-API-Key": "dev-partner-key"}
GATEWAY = f"http://127.0.0.1:{service_port(8080)}"
PRODUCTS = {"development": 1, "emergency": 2, "school_fees": 3, "business": 4, "asset": 5}


@dataclass
class System:
    model: TinyModel
    env: dict[str, str]
    audit_schema: str
    trace_file: Path
    infra: InfraSettings
    run: str
    baseline: dict[TopicPartition, int]  # every topic's end offsets before the services started

    @property
    def scoring_group(self) -> str:
        return self.env["ALAMA_SCORING_CONSUMER_GROUP"]


def _partitions(topic: str) -> list[TopicPartition]:
    spec = next(t for t in all_topics() if t.name == topic)
    return [TopicPartition(topic, p) for p in range(spec.partitions)]


@pytest.fixture(scope="module")
def system(
    infra: InfraSettings, tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    run = uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("e2e")
    trace_file = folder / "spans.jsonl"
    audit_schema = f"audit_e2e_{run}"
    env = {
        **tiny_model.feast_env,
        "ALAMA_TRACE_FILE": str(trace_file),
        "ALAMA_SCORING_MODEL_SOURCE": "link",  # this test's own bundle, not the registry's
        "ALAMA_SCORING_BUNDLE_DIR": str(tiny_model.bundle),
        "ALAMA_DRIFT_BUNDLE_DIR": str(tiny_model.bundle),
        "ALAMA_EXPLANATION_BUNDLE_ROOT": str(tiny_model.bundle.parent),
        "ALAMA_AUDIT_DB_SCHEMA": audit_schema,
        "ALAMA_EXPLANATION_DB_SCHEMA": f"explanation_e2e_{run}",
        "ALAMA_AUDIT_CONSUMER_GROUP": f"audit-e2e-{run}",
        "ALAMA_SCORING_CONSUMER_GROUP": f"scoring-e2e-{run}",
        "ALAMA_EXPLANATION_CONSUMER_GROUP": f"explanation-e2e-{run}",
        "ALAMA_DRIFT_CONSUMER_GROUP": f"drift-e2e-{run}",
        "ALAMA_FEATURE_STORE_CONSUMER_GROUP": f"feature-store-e2e-{run}",
        "ALAMA_DRIFT_WINDOW_SIZE": "200",
        "ALAMA_CONSOLE_DB_SCHEMA": f"console_e2e_{run}",
        "ALAMA_CONSOLE_CONSUMER_GROUP": f"console-e2e-{run}",
        "ALAMA_OUTCOMES_DB_SCHEMA": f"outcomes_e2e_{run}",
        "ALAMA_OUTCOMES_CONSUMER_GROUP": f"outcomes-e2e-{run}",
        "ALAMA_OUTCOMES_BUNDLE_ROOT": str(tiny_model.bundle.parent),
        "ALAMA_OUTCOMES_PERFORMANCE_EVERY_SECONDS": "2",
        # a store of members' data (their applications): here for members' rights, never training
        "ALAMA_RETRAINER_DB_SCHEMA": f"retrainer_e2e_{run}",
        "ALAMA_RETRAINER_CONSUMER_GROUP": f"retrainer-e2e-{run}",
        "ALAMA_RETRAINER_WORK_DIR": str(folder / "retrainer"),
        "ALAMA_RETRAINER_SCHEDULE_EVERY_HOURS": "0",
        "ALAMA_RETRAINER_MIN_NEW_OUTCOMES": "1000000",
    }
    supervisor.down(echo=lambda _line: None)
    asyncio.run(
        start_groups_at_the_end(
            infra,
            {
                env["ALAMA_SCORING_CONSUMER_GROUP"]: [LOAN_APPLICATIONS],
                env["ALAMA_EXPLANATION_CONSUMER_GROUP"]: [CREDIT_DECISIONS],
                env["ALAMA_AUDIT_CONSUMER_GROUP"]: [
                    LOAN_APPLICATIONS,
                    CREDIT_DECISIONS,
                    CREDIT_EXPLANATIONS,
                    REVIEW_OUTCOMES,
                ],
                env["ALAMA_DRIFT_CONSUMER_GROUP"]: [CREDIT_DECISIONS],
                env["ALAMA_FEATURE_STORE_CONSUMER_GROUP"]: [
                    MOBILE_MONEY_TRANSACTIONS,
                    REPAYMENTS,
                    MEMBER_ERASURES_VOUCHED,  # earlier runs' erasures are not this run's
                    MEMBER_EXPORTS,
                ],
                env["ALAMA_CONSOLE_CONSUMER_GROUP"]: [
                    LOAN_APPLICATIONS,
                    CREDIT_DECISIONS,
                    APPEALS,
                    LOAN_OUTCOMES,
                    MEMBER_ERASURES,
                    MEMBER_EXPORTS,
                ],
                env["ALAMA_OUTCOMES_CONSUMER_GROUP"]: [
                    CREDIT_DECISIONS,
                    REVIEW_OUTCOMES,
                    LOANS,
                    REPAYMENTS,
                ],
                env["ALAMA_RETRAINER_CONSUMER_GROUP"]: [
                    LOAN_APPLICATIONS,
                    LOAN_OUTCOMES,
                    DRIFT_ALERTS,
                    MODEL_PERFORMANCE_ALERTS,
                    MEMBER_ERASURES,
                    MEMBER_EXPORTS,
                ],
            },
        )
    )
    baseline = asyncio.run(end_offsets(infra, [t.name for t in all_topics()]))
    supervisor.up(env=env, echo=lambda _line: None)
    supervisor.up(["retrainer"], env=env, echo=lambda _line: None)
    try:
        yield System(tiny_model, env, audit_schema, trace_file, infra, run, baseline)
    finally:
        supervisor.down(echo=lambda _line: None)


# ------------------------------------------------------------------------------------ helpers


async def _until(check: Any, within: float, what: str, every: float = 0.5) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what} not reached in {within:.0f}s (last: {last!r})")


async def _audit_rows(system: System, prefix: str) -> list[AuditedEvent]:
    """Read as the demo and bench do: through the audit service's reader, with the shared login."""
    async with AuditReader.connect(system.infra.postgres_dsn, system.audit_schema) as audit:
        return await audit.events(prefix)


async def _decided(system: System, prefix: str, n: int) -> bool:
    rows = await _audit_rows(system, prefix)
    topics = Counter(r.topic for r in rows)
    return topics[CREDIT_DECISIONS] >= n and topics[CREDIT_EXPLANATIONS] >= n


async def _records_on(system: System, topic: str) -> int:
    """How many records reached a topic since the services under test started."""
    ends = await end_offsets(system.infra, [topic])
    return sum(end - system.baseline[tp] for tp, end in ends.items())


async def _read_new(system: System, topic: str, count: int) -> list[ConsumerRecord]:
    """`count` records written to a topic since the services under test started."""
    consumer = AIOKafkaConsumer(bootstrap_servers=system.infra.kafka_bootstrap)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        partitions = _partitions(topic)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, system.baseline[tp])
        async with asyncio.timeout(60):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def _spans_by_trace(trace_file: Path) -> dict[str, set[str]]:
    services: dict[str, set[str]] = defaultdict(set)
    if trace_file.exists():
        for line in trace_file.read_text().splitlines():
            span = json.loads(line)
            trace_id = span["context"]["trace_id"].removeprefix("0x")
            services[trace_id].add(span["resource"]["attributes"]["service.name"])
    return services


def _audit_verify(system: System) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.audit", "verify"],
        cwd=REPO,
        env={**os.environ, **system.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _same_decision(sync: dict[str, Any], event: CreditDecision) -> None:
    assert sync["decision_id"] == event.decision_id
    assert sync["score"] == event.score
    assert sync["probability_of_default"] == pytest.approx(event.probability_of_default, abs=1e-12)
    assert sync["band"] == BANDS.name(event.band)
    assert [r["code"] for r in sync["reasons"]] == [r.code for r in event.reasons]


# -------------------------------------------------------------------------------------- tests


async def test_500_applications_become_one_decision_explanation_and_audit_trail_each(
    system: System,
) -> None:
    settings = SimulatorSettings(
        infra=system.infra,
        feature_group=system.env["ALAMA_FEATURE_STORE_CONSUMER_GROUP"],
        profile="tiny",
    )
    run_id = f"e2e{system.run}"
    summary: Summary = await simulate(
        settings,
        SimulationOptions(applications=N_APPLICATIONS, rate=100.0, run_id=run_id),
        book=system.model.book,
    )
    assert summary.applications.accepted == N_APPLICATIONS, summary.applications
    assert not summary.webhooks.errors and not summary.repayments.errors
    assert summary.features_wait is not None and summary.features_wait.caught_up

    await _until(lambda: _decided(system, run_id, N_APPLICATIONS), 240, "every application audited")
    # everything scoring was given is processed: the topics now hold all they ever will
    lag = await wait_for_group(system.infra, system.scoring_group, [LOAN_APPLICATIONS], within=60)
    assert lag.caught_up

    # exactly one decision event and one explanation event per application
    assert await _records_on(system, CREDIT_DECISIONS) == N_APPLICATIONS
    assert await _records_on(system, CREDIT_EXPLANATIONS) == N_APPLICATIONS
    records = await _read_new(system, CREDIT_DECISIONS, N_APPLICATIONS)
    decisions = {
        d.application_id: d for d in (decode(r.value, CreditDecision).payload for r in records)
    }
    assert sorted(decisions) == sorted(summary.application_ids)

    # its audit rows: the application, the decision, the explanation; one trace across them
    rows = await _audit_rows(system, run_id)
    by_application: dict[str, list[AuditedEvent]] = defaultdict(list)
    for row in rows:
        by_application[row.application_id].append(row)
    assert len(by_application) == N_APPLICATIONS
    for application_id, trail in by_application.items():
        assert sorted(r.topic for r in trail) == sorted(
            [LOAN_APPLICATIONS, CREDIT_DECISIONS, CREDIT_EXPLANATIONS]
        ), application_id
        assert len({r.trace_id for r in trail}) == 1 and trail[0].trace_id

    # the same trace id spans gateway, scoring, explanation and audit (spans from each process)
    traces = {trail[0].trace_id for trail in by_application.values()}
    wanted = {"gateway", "scoring", "explanation", "audit"}

    async def all_traced() -> bool:
        seen = await asyncio.to_thread(_spans_by_trace, system.trace_file)
        return all(wanted <= seen.get(t, set()) for t in traces)

    await _until(all_traced, 60, "every trace carries spans of all four services", every=1.0)

    # the synchronous score of the same application equals the asynchronous decision
    scenario = build_scenario(system.model.book, N_APPLICATIONS, run_id)
    async with httpx.AsyncClient(base_url=GATEWAY, headers=API_KEY, timeout=30) as client:
        for application in scenario.applications[:50]:
            response = await client.post("/v1/scores", json=application_body(application))
            assert response.status_code == 200, response.text
            _same_decision(response.json(), decisions[application.application_id])
        # and the gateway serves the stored decision and its explanation
        some = decisions[scenario.applications[0].application_id]
        got = await client.get(f"/v1/decisions/{some.decision_id}")
        assert got.status_code == 200 and got.json()["score"] == some.score
        explained = await client.get(f"/v1/decisions/{some.decision_id}/explanation")
        assert explained.status_code == 200 and explained.json()["reasons"]

    # the chain verifies, and stops verifying once one row is altered in the database (by the
    # schema's owner: the shared login may not even switch the trigger off)
    verified = await asyncio.to_thread(_audit_verify, system)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    conn = await asyncpg.connect(AuditSettings(infra=system.infra).owner_dsn)
    events = f"{system.audit_schema}.events"

    async def rewrite(seq: int, payload: str) -> None:
        await conn.execute(f"ALTER TABLE {events} DISABLE TRIGGER events_append_only")
        await conn.execute(f"UPDATE {events} SET payload = $2 WHERE seq = $1", seq, payload)
        await conn.execute(f"ALTER TABLE {events} ENABLE TRIGGER events_append_only")

    try:
        first = await conn.fetchrow(
            f"SELECT seq, payload FROM {events} WHERE topic = $1 ORDER BY seq LIMIT 1",
            CREDIT_DECISIONS,
        )
        altered = json.dumps(json.loads(first["payload"]) | {"score": 900})
        await rewrite(first["seq"], altered)
        tampered = await asyncio.to_thread(_audit_verify, system)
        assert tampered.returncode != 0, tampered.stdout
        await rewrite(first["seq"], first["payload"])  # later tests verify the chain too
    finally:
        await conn.close()
    restored = await asyncio.to_thread(_audit_verify, system)
    assert restored.returncode == 0, restored.stdout + restored.stderr


async def test_approved_loans_mature_into_outcomes_live_performance_and_equal_opportunity(
    system: System,
) -> None:
    """Core banking (the simulator) disburses a loan for each application the gateway says was
    approved and records its instalments; the outcomes service publishes each loan's
    outcome once, by the contract's default; its live AUC is on its metrics; the console holds
    the outcomes and computes equal opportunity by gender from them."""
    from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
    from services.console.oversight import equal_opportunity, parse_live

    settings = SimulatorSettings(
        infra=system.infra,
        feature_group=system.env["ALAMA_FEATURE_STORE_CONSUMER_GROUP"],
        profile="tiny",
    )
    run_id = f"loans{system.run}"
    summary: Summary = await simulate(
        settings,
        SimulationOptions(
            applications=160,
            rate=100.0,
            run_id=run_id,
            via=Via.GATEWAY,  # on loan.applications: the console holds each member's group
            disburse=True,
            decision_wait_seconds=20.0,
        ),
        book=system.model.book,
    )
    disbursed = summary.disbursement
    assert disbursed is not None and disbursed.funded > 40, disbursed
    assert not disbursed.loans.errors and not disbursed.instalments.errors
    assert disbursed.verdicts.get("declined", 0) > 0  # declines get no loan

    async def all_judged() -> int:
        n = await _records_on(system, LOAN_OUTCOMES)
        return n if n >= disbursed.funded else 0

    await _until(all_judged, 180, "an outcome for every loan")
    await asyncio.sleep(2.0)  # nothing more may come: one outcome per loan
    assert await _records_on(system, LOAN_OUTCOMES) == disbursed.funded
    records = await _read_new(system, LOAN_OUTCOMES, disbursed.funded)
    outcomes = [decode(r.value, LoanOutcome).payload for r in records]
    assert len({o.loan_id for o in outcomes}) == disbursed.funded
    assert sum(o.defaulted for o in outcomes) == disbursed.defaulting
    assert {o.model_version for o in outcomes} == {system.model.bundle.resolve().name}
    assert all(o.band == BANDS.value("approve") for o in outcomes)  # only approvals funded

    metrics_url = f"http://127.0.0.1:{service_port(9107)}/metrics"

    async def live() -> list[Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            months = parse_live((await client.get(metrics_url)).text, outcomes[0].tenant_id)
        return (
            [m for m in months if m.matured]
            if sum(m.matured for m in months) >= len(outcomes)
            else []
        )

    months = await _until(live, 60, "live performance on the outcomes' metrics")
    assert sum(m.matured for m in months) == len(outcomes)

    console = ConsoleStore(
        await asyncpg.create_pool(system.infra.postgres_dsn, min_size=1, max_size=1),
        system.env["ALAMA_CONSOLE_DB_SCHEMA"],
    )
    try:

        async def held() -> list[Any]:
            rows = await console.opportunity_by_group(outcomes[0].tenant_id, "gender")
            matured = sum(int(r["matured"]) for r in rows)
            return rows if matured == len(outcomes) else []

        rows = await _until(held, 120, "the console's copy of every outcome")
    finally:
        await console.pool.close()
    opportunity = equal_opportunity(rows)
    assert {g.group for g in opportunity.groups} >= {"female", "male"}
    assert opportunity.eod is not None and opportunity.eod_low is not None


def _thread_nices(pid: int) -> set[int]:
    """The nice value of every thread of a process (field 19 of each task's stat)."""
    nices = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        nices.add(int(fields[16]))  # field 19, counted after the command's name
    return nices


def test_the_synchronous_path_runs_ahead_of_the_services_off_it(system: System) -> None:
    """Gateway and scoring at the supervisor's priority; every thread of the services that
    work from Kafka (explanation, audit, drift, ...) at `OFF_PATH_NICE` below it, the feature
    store's (what scoring reads) at `FRESHNESS_NICE`, between the two."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    seen = {}
    for spec in supervisor.SERVICES:
        pid = supervisor.pid_of(spec.name)
        if pid is None:
            continue
        seen[spec.name] = _thread_nices(pid)
    assert seen["gateway"] == seen["scoring"] == {own}
    off_path = {n for n in seen if n not in ("gateway", "scoring")}
    assert off_path >= {"explanation", "audit", "drift", "outcomes", "feature_store"}
    lowered = min(own + supervisor.OFF_PATH_NICE, 19)
    fresher = min(own + supervisor.FRESHNESS_NICE, 19)
    expected = {name: fresher if name == "feature_store" else lowered for name in off_path}
    for name in off_path:
        assert seen[name] == {expected[name]}, name
    # each service leads its own session: with the kernel's autogroups on, the session's
    # priority is what weighs against the gateway's and scoring's sessions
    sessions = {
        spec.name: local.session_priority(pid)
        for spec in supervisor.SERVICES
        if (pid := supervisor.pid_of(spec.name)) is not None
    }
    if not local.autogroups_on():
        assert set(sessions.values()) == {None}
    else:
        assert sessions["gateway"] == sessions["scoring"] == 0
        assert {name: sessions[name] for name in off_path} == expected
    # PostgreSQL serves only those services: the postmaster and every backend below too
    [postgres] = [s for s in local.servers() if isinstance(s, local.Postgres)]
    postmaster = postgres.pid()
    assert postmaster is not None
    backends = [
        int(stat.parent.name)
        for stat in Path("/proc").glob("[0-9]*/stat")
        if stat.read_text().rpartition(")")[2].split()[1] == str(postmaster)
    ]
    assert backends  # the services' connections are open
    for pid in [postmaster, *backends]:
        assert _thread_nices(pid) == {min(own + local.OFF_PATH_NICE, 19)}, pid
    if local.autogroups_on():
        assert local.session_priority(postmaster) == lowered


async def test_an_undecodable_event_is_dead_lettered_and_the_pipeline_goes_on(
    system: System,
) -> None:
    garbage = b"\x08\x96\x01 not an envelope"
    producer = create_producer(system.infra, client_id="e2e-core-banking")
    await producer.start()
    member = str(system.model.world.applications["member_id"].iloc[0])
    application = LoanApplicationSubmitted(
        application_id=f"dlq{system.run}-1",
        tenant_id=DEV_TENANT,
        member_id=member,
        product=1,
        amount_kes=20_000.0,
        term_months=6,
    )
    try:
        await producer.send_and_wait(LOAN_APPLICATIONS, garbage, key=member.encode())
        await (
            await publish(
                producer, LOAN_APPLICATIONS, wrap(application, producer="e2e", subject=member)
            )
        )
    finally:
        await producer.stop()
    await _until(lambda: _decided(system, f"dlq{system.run}-", 1), 60, "the good one decided")
    letters = await _read_new(system, LOAN_APPLICATIONS + ".dlq", 1)
    reasons = {}
    for record in letters:
        letter = decode(record.value, DeadLetter).payload
        reasons[letter.source_value] = (letter.reason, letter.consumer_group)
    assert reasons[garbage][0] == "undecodable_envelope"


async def test_scoring_killed_mid_stream_loses_and_duplicates_no_decision(
    system: System,
) -> None:
    """SIGKILL scoring while a backlog streams through it; restart it; count the decisions."""
    n = 3000
    prefix = f"kill{system.run}-"
    apps = system.model.world.applications
    producer = create_producer(system.infra, client_id="e2e-core-banking", linger_ms=20)
    await producer.start()
    try:
        pending = []
        for i in range(n):
            row = apps.iloc[i % len(apps)]
            application = LoanApplicationSubmitted(
                application_id=f"{prefix}{i}",
                tenant_id=DEV_TENANT,  # core banking publishes for its SACCO
                member_id=str(row["member_id"]),
                product=PRODUCTS[str(row["product"])],
                amount_kes=float(row["amount_kes"]),
                term_months=int(row["term_months"]),
            )
            envelope = wrap(application, producer="e2e", subject=application.member_id)
            pending.append(await publish(producer, LOAN_APPLICATIONS, envelope))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()

    async def some_decided() -> int:
        rows = await _audit_rows(system, prefix)
        decided = sum(1 for r in rows if r.topic == CREDIT_DECISIONS)
        return decided if decided >= 200 else 0

    at_kill = await _until(some_decided, 120, "scoring under way", every=0.05)
    await asyncio.to_thread(supervisor.kill, "scoring")
    assert at_kill < n, "scoring finished before it could be killed: raise n"
    await asyncio.to_thread(supervisor.start, supervisor.BY_NAME["scoring"], system.env)

    await _until(lambda: _decided(system, prefix, n), 300, "every application decided")
    lag = await wait_for_group(system.infra, system.scoring_group, [LOAN_APPLICATIONS], within=60)
    assert lag.caught_up
    rows = await _audit_rows(system, prefix)
    decided = Counter(r.application_id for r in rows if r.topic == CREDIT_DECISIONS)
    explained = Counter(r.application_id for r in rows if r.topic == CREDIT_EXPLANATIONS)
    assert len(decided) == n and set(decided.values()) == {1}  # none lost, none twice
    assert len(explained) == n and set(explained.values()) == {1}


async def test_scoring_killed_right_after_its_replies_loses_no_decision_it_told(
    system: System,
) -> None:
    """A synchronous decision is on the broker before the caller has it: SIGKILL scoring the
    moment the replies arrive, and every decision a caller was told is still explained and
    audited; asking again for the same application returns that same decision."""
    n = 60
    prefix = f"told{system.run}-"
    apps = system.model.world.applications

    def body(i: int) -> dict[str, Any]:
        row = apps.iloc[i % len(apps)]
        return {
            "application_id": f"{prefix}{i}",
            "member_id": str(row["member_id"]),
            "product": str(row["product"]),
            "amount_kes": float(row["amount_kes"]),
            "term_months": int(row["term_months"]),
        }

    async with httpx.AsyncClient(base_url=GATEWAY, headers=API_KEY, timeout=30) as client:
        replies = await asyncio.gather(*(client.post("/v1/scores", json=body(i)) for i in range(n)))
        await asyncio.to_thread(supervisor.kill, "scoring")
        told = {r.json()["decision_id"]: r.json() for r in replies if r.status_code == 200}
        assert len(told) == n, [r.text for r in replies if r.status_code != 200][:3]
        await asyncio.to_thread(supervisor.start, supervisor.BY_NAME["scoring"], system.env)
        again = await client.post("/v1/scores", json=body(0))
        assert again.status_code == 200, again.text
        assert again.json() == told[again.json()["decision_id"]]
        changed = await client.post("/v1/scores", json=body(0) | {"amount_kes": 1234.0})
        assert changed.status_code == 409, changed.text
        assert again.json()["decision_id"] in changed.json()["detail"]

    async def all_audited() -> bool:
        rows = await _audit_rows(system, prefix)
        audited = {r.event_id for r in rows if r.topic == CREDIT_DECISIONS}
        return set(told) <= audited and _decided_count(rows) >= n

    await _until(all_audited, 120, "every decision told to a caller audited")
    rows = await _audit_rows(system, prefix)
    decided = Counter(r.application_id for r in rows if r.topic == CREDIT_DECISIONS)
    assert len(decided) == n and set(decided.values()) == {1}  # republished ones deduplicated


def _decided_count(rows: list[AuditedEvent]) -> int:
    return sum(1 for r in rows if r.topic == CREDIT_EXPLANATIONS)


async def test_a_members_export_and_erasure_reach_every_store_through_events(
    system: System,
) -> None:
    """The admin API's export and erasure as a deployment runs them. Export: 202, then
    explanation, the audit chain, the feature store, the console, the outcomes service and the
    retrainer each answer with their part of the member's data on member.exports.parts, and the
    gateway returns the whole. Erasure: 202, then each store erases its part and answers on
    member.erasures.completed; the status reports every store, the member's decision is gone,
    its Feast online hash is gone, another member's is kept, and the chain still verifies."""
    from services.feature_store.member_data import FeastMemberData
    from services.gateway.security import issue_token
    from services.gateway.settings import GatewaySettings
    from tests.integration.feast_projects import feast_project

    world = system.model.world
    member, kept = (str(m) for m in world.members["member_id"].iloc[[-1, -2]])
    with feast_project("bundle_test"):  # the tiny model's Feast project, the services' too
        feast = FeastMemberData(system.infra)
        online = {m: feast._redis_key(member_key(DEV_TENANT, m)) for m in (member, kept)}

    async def held() -> dict[str, bool]:
        redis = create_redis(system.infra)
        try:
            return {m: bool(await redis.exists(key)) for m, key in online.items()}
        finally:
            await redis.aclose()

    assert await held() == {member: True, kept: True}
    body = {
        "application_id": f"erase{system.run}-1",
        "member_id": member,
        "product": "emergency",
        "amount_kes": 15_000.0,
        "term_months": 6,
    }
    token = issue_token(GatewaySettings(), "dpo", ["admin"], tenant=DEV_TENANT)
    admin = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
        scored = await client.post("/v1/scores", json=body, headers=API_KEY)
        assert scored.status_code == 200, scored.text
        decision_id = scored.json()["decision_id"]

        async def stored() -> bool:
            found = await client.get(f"/v1/decisions/{decision_id}", headers=API_KEY)
            return found.status_code == 200

        await _until(stored, 120, "the decision in the decision store")
        await _until(
            lambda: _decided(system, body["application_id"], 1), 120, "the decision audited"
        )
        console = ConsoleStore(
            await asyncpg.create_pool(system.infra.postgres_dsn, min_size=1, max_size=1),
            system.env["ALAMA_CONSOLE_DB_SCHEMA"],
        )
        key = OutcomesSettings().member_pseudonym_key.get_secret_value().encode()
        outcomes = OutcomesStore(
            await asyncpg.create_pool(system.infra.postgres_dsn, min_size=1, max_size=1),
            system.env["ALAMA_OUTCOMES_DB_SCHEMA"],
            lambda tenant, m: tenant_member_ref(key, tenant, m),
        )
        try:
            await _until(
                lambda: console.holds_member(DEV_TENANT, member), 120, "the console's copy"
            )
            await _until(
                lambda: outcomes.holds_member(DEV_TENANT, member), 120, "the outcomes' copy"
            )
        finally:
            await console.pool.close()
            await outcomes.pool.close()

        asked = await client.post(
            "/v1/admin/members/exports", json={"member_id": member}, headers=admin
        )
        assert asked.status_code == 202, asked.text
        export_url = asked.json()["status_url"]

        async def exported() -> dict[str, Any] | None:
            report = (await client.get(export_url, headers=admin)).json()
            return None if report["status"] == "pending" else report

        export = await _until(exported, 180, "every store's export part", every=1.0)
        assert export["status"] == "completed", export
        parts = export["stores"]
        decided = {d["decision"]["decision_id"]: d for d in parts["decisions"]["data"]}
        ours = decided[decision_id]  # (earlier tests may have decided for the member too)
        assert ours["decision"]["member_id"] == member and ours["explanation"] is not None
        assert body["application_id"] in {r["application_id"] for r in parts["audit"]["data"]}
        assert parts["feast"]["data"]["online"], "no online features exported"
        assert all(
            row["member_id"] == member_key(DEV_TENANT, member)
            for rows in parts["feast"]["data"]["offline"].values()
            for row in rows
        )
        assert parts["faust_tables"]["status"] == "completed"
        assert parts["retrainer"]["status"] == "completed"  # started on demand, as deployed
        # the outcomes service files the decision under the member's keyed pseudonym
        assert parts["outcomes"]["member_held"], parts["outcomes"]
        outcomes_part = parts["outcomes"]["data"]
        assert decision_id in {d["decision_id"] for d in outcomes_part["decisions"]}
        assert parts["console"]["member_held"]
        console_part = parts["console"]["data"]
        # (a synchronous score publishes its decision, not the application: the console's
        # applications hold the member's asynchronous ones only)
        assert decision_id in {d["decision_id"] for d in console_part["decisions"]}

        accepted = await client.post(
            "/v1/admin/members/erasures", json={"member_id": member}, headers=admin
        )
        assert accepted.status_code == 202, accepted.text
        status_url = accepted.json()["status_url"]

        async def finished() -> dict[str, Any] | None:
            report = (await client.get(status_url, headers=admin)).json()
            return None if report["status"] == "pending" else report

        report = await _until(finished, 180, "every store's erasure completion", every=1.0)
        assert report["status"] == "completed", report
        stores = report["stores"]
        assert set(stores) == {
            "decisions",
            "audit",
            "feast",
            "faust_tables",
            "console",
            "outcomes",
            "retrainer",
        }
        assert stores["console"]["member_held"] and stores["console"]["records_erased"] >= 1
        assert stores["outcomes"]["member_held"] and stores["outcomes"]["records_erased"] >= 1
        assert stores["decisions"]["member_held"] and stores["decisions"]["records_erased"] >= 1
        assert stores["audit"]["member_held"] and stores["audit"]["records_erased"] >= 1
        assert stores["feast"]["records_erased"] >= 1  # at least the online hash
        assert "M0" not in json.dumps(report)  # the member appears by pseudonym only

        gone = await client.get(f"/v1/decisions/{decision_id}", headers=API_KEY)
        assert gone.status_code == 404, gone.text
        # another tenant asking for the status learns nothing
        other = issue_token(GatewaySettings(), "dpo", ["admin"], tenant="sacco-other")
        hidden = await client.get(status_url, headers={"Authorization": f"Bearer {other}"})
        assert hidden.status_code == 404

    assert await held() == {member: False, kept: True}
    verified = await asyncio.to_thread(_audit_verify, system)
    assert verified.returncode == 0, verified.stdout + verified.stderr
