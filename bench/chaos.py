"""The chaos battery: under load, break one part of the system at a time and count what survived.

For each fault, applications stream in through the gateway (every fifth synchronously, the
rest asynchronously) with mobile-money webhooks beside them. Every send is retried with the same
id and content until the system takes it, as a partner's client does; a third of the way
through comes the fault. Then the battery waits until the system has caught up and counts:

- applications taken;
- decisions, explanations and complete audit trails;
- `lost`: taken, but missing a decision, an explanation or one of its audit rows;
- `duplicated`: an application's decision or explanation audited more than once;
- records on the topics beyond one per application (reported: at-least-once delivery may
  repeat an event, the stores must not);
- decisions told to a caller but never audited;
- whether the audit chain verifies;
- the seconds from the fault's end until every consumer group's lag is back at 0 and every
  application is audited.

The services run under the supervisor on fresh consumer groups that start at the topics' end, with
their own audit and explanation schemas, so the counts see only the battery's own events.

    python -m bench.chaos [--scale tiny|standard] [--only FAULT ...]   (`make chaos`: standard)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import httpx
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console

from infra import local, supervisor
from services.audit.reader import AuditedEvent, AuditReader
from services.common.envelope import decode
from services.common.lag import GroupLagProbe
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.settings import InfraSettings, service_port
from services.common.topics import (
    CREDIT_DECISIONS,
    CREDIT_EXPLANATIONS,
    LOAN_APPLICATIONS,
    MEMBER_ERASURES_VOUCHED,
    MEMBER_EXPORTS,
    MOBILE_MONEY_TRANSACTIONS,
    REPAYMENTS,
    REVIEW_OUTCOMES,
)
from simulator.lag import end_offsets, start_groups_at_the_end
from simulator.payloads import application_body, lane_deliveries
from simulator.scenario import ApplicationRequest, build_scenario
from simulator.senders import GatewayClient
from simulator.settings import SimulatorSettings
from training.contract import LoanBook

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
console = Console()
Echo = Callable[[str], None]

SERVICE_FAULTS = ("gateway", "feature_store", "scoring", "explanation", "audit", "drift")
FAULTS = (
    *(f"kill-{name}" for name in SERVICE_FAULTS),
    "restart-kafka",
    "stop-redis",
    "stop-postgres",
    "scoring-replicas",
)
#: a response that says "not now" rather than "never": the client sends the same request again
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Scale:
    applications: int  # per fault
    rate: float  # applications per second
    outage_seconds: float  # how long Redis and PostgreSQL stay stopped
    catch_up_seconds: float  # how long the system may take to catch up after a fault
    send_deadline_seconds: float  # how long a client keeps retrying one request


SCALES = {
    "tiny": Scale(
        applications=60,
        rate=20.0,
        outage_seconds=10.0,
        catch_up_seconds=240.0,
        send_deadline_seconds=120.0,
    ),
    "standard": Scale(
        applications=1000,
        rate=40.0,
        outage_seconds=10.0,
        catch_up_seconds=600.0,
        send_deadline_seconds=300.0,
    ),
}


@dataclass
class FaultResult:
    fault: str
    applications: int  # taken by the system (202 or 200), distinct ids
    rejected: int  # given a final 4xx, or still failing when the client gave up
    client_retries: int
    decisions: int  # applications with at least one decision event
    explanations: int  # applications with at least one explanation event
    audit_trails: int  # applications whose every expected audit row is there
    lost: int
    duplicated: int
    topic_duplicates: dict[str, int]
    told_unaudited: int  # synchronous decisions a caller was given that the audit lacks
    chain_verified: bool
    lags_zero: bool
    recovery_seconds: float | None
    seconds: float = 0.0  # the whole fault: load, fault, catching up, counting, verifying
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.told_unaudited == 0
            and self.rejected == 0
            and self.chain_verified
            and self.lags_zero
        )


# ------------------------------------------------------------------------------------ the system


@dataclass(frozen=True)
class System:
    """The services under test: their environment, consumer groups and audit schema."""

    infra: InfraSettings
    env: dict[str, str]
    run: str

    @property
    def audit_schema(self) -> str:
        return self.env["ALAMA_AUDIT_DB_SCHEMA"]

    def groups(self) -> dict[str, list[str]]:
        """Every consumer group of the services, with the topics it reads."""
        return {
            self.env["ALAMA_SCORING_CONSUMER_GROUP"]: [LOAN_APPLICATIONS],
            self.env["ALAMA_EXPLANATION_CONSUMER_GROUP"]: [CREDIT_DECISIONS],
            self.env["ALAMA_AUDIT_CONSUMER_GROUP"]: [
                LOAN_APPLICATIONS,
                CREDIT_DECISIONS,
                CREDIT_EXPLANATIONS,
                REVIEW_OUTCOMES,
            ],
            self.env["ALAMA_DRIFT_CONSUMER_GROUP"]: [CREDIT_DECISIONS],
            self.env["ALAMA_FEATURE_STORE_CONSUMER_GROUP"]: [
                MOBILE_MONEY_TRANSACTIONS,
                REPAYMENTS,
                # earlier runs' erasures are not this run's: replayed from the start, they erased
                # those members from the shared Feast project again, and a second `make test` on
                # the same instance found the e2e pipeline's member gone before it began
                MEMBER_ERASURES_VOUCHED,
                MEMBER_EXPORTS,
            ],
        }


def system_env(run: str, bundle: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Fresh groups, schemas and ledger namespace for one run, on the bundle given."""
    return {
        **(extra or {}),
        "ALAMA_SCORING_MODEL_SOURCE": "link",  # the run's own bundle, not the registry's
        "ALAMA_SCORING_BUNDLE_DIR": str(bundle),
        "ALAMA_DRIFT_BUNDLE_DIR": str(bundle),
        "ALAMA_EXPLANATION_BUNDLE_ROOT": str(bundle.parent),
        "ALAMA_AUDIT_DB_SCHEMA": f"audit_chaos_{run}",
        "ALAMA_EXPLANATION_DB_SCHEMA": f"explanation_chaos_{run}",
        "ALAMA_AUDIT_CONSUMER_GROUP": f"audit-chaos-{run}",
        "ALAMA_SCORING_CONSUMER_GROUP": f"scoring-chaos-{run}",
        "ALAMA_SCORING_LEDGER_NAMESPACE": f"chaos-{run}",
        "ALAMA_EXPLANATION_CONSUMER_GROUP": f"explanation-chaos-{run}",
        "ALAMA_DRIFT_CONSUMER_GROUP": f"drift-chaos-{run}",
        "ALAMA_FEATURE_STORE_CONSUMER_GROUP": f"feature-store-chaos-{run}",
        "ALAMA_DRIFT_WINDOW_SIZE": "200",
    }


def start_system(infra: InfraSettings, env: dict[str, str], run: str) -> System:
    system = System(infra, env, run)
    supervisor.down(echo=lambda _line: None)
    asyncio.run(start_groups_at_the_end(infra, system.groups()))
    supervisor.up(env=env, echo=lambda _line: None)
    return system


# ------------------------------------------------------------------------------------ the load


@dataclass
class LoadResult:
    taken: dict[str, bool] = field(default_factory=dict)  # application id -> synchronously
    told: set[str] = field(default_factory=set)  # decision ids given to callers
    rejected: Counter[str] = field(default_factory=Counter)
    retries: int = 0


class Client:
    """A partner's and a mobile-money provider's client: the same request again until taken."""

    def __init__(self, http: httpx.AsyncClient, settings: SimulatorSettings, deadline: float):
        self.http = http
        self.api_key = settings.api_key.get_secret_value()
        self.gateway = GatewayClient(
            http,
            api_key=self.api_key,
            webhook_secret=settings.webhook_secret.get_secret_value(),
            tenant=settings.tenant,
        )
        self.deadline = deadline
        self.retries = 0

    async def _again(self, attempt: Callable[[], Awaitable[str | int]]) -> str | int:
        """Repeat until the answer is not transient or the deadline passes; the last answer."""
        give_up = time.monotonic() + self.deadline
        delay = 0.1
        while True:
            answer = await attempt()
            transient = isinstance(answer, str) or answer in TRANSIENT
            if not transient or time.monotonic() > give_up:
                return answer
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def application(
        self, app: ApplicationRequest, synchronous: bool, load: LoadResult
    ) -> None:
        body = application_body(app)
        path, wanted = ("/v1/scores", 200) if synchronous else ("/v1/applications", 202)
        reply: dict[str, Any] = {}

        async def attempt() -> str | int:
            try:
                response = await self.http.post(
                    path, json=body, headers={"X-API-Key": self.api_key}
                )
            except httpx.HTTPError as exc:
                return type(exc).__name__
            if response.status_code == wanted and synchronous:
                reply.update(response.json())
            return response.status_code

        answer = await self._again(attempt)
        if answer == wanted:
            load.taken[app.application_id] = synchronous
            if synchronous:
                load.told.add(str(reply["decision_id"]))
        else:
            load.rejected[str(answer)] += 1

    async def webhooks(self, transactions: Any, load: LoadResult) -> None:
        for lane in lane_deliveries(transactions, lanes=1):
            for delivery in lane:

                async def attempt(delivery: Any = delivery) -> str | int:
                    outcome = await self.gateway.deliver(delivery)
                    return int(outcome.status) if outcome.status.isdigit() else outcome.status

                answer = await self._again(attempt)
                if answer != 202:
                    load.rejected[f"webhook {answer}"] += 1


async def run_load(
    system: System,
    book: LoanBook,
    scale: Scale,
    prefix: str,
    fault: Callable[[], Awaitable[None]],
) -> tuple[LoadResult, float]:
    """Send one fault's applications and webhooks, with the fault a third of the way through;
    returns what was taken and the monotonic time the fault ended."""
    scenario = build_scenario(book, scale.applications, prefix)
    settings = SimulatorSettings(infra=system.infra)
    load = LoadResult()
    fault_ended = 0.0
    limits = httpx.Limits(max_connections=64)
    base_url = f"http://127.0.0.1:{service_port(8080)}"
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0, limits=limits) as http:
        client = Client(http, settings, scale.send_deadline_seconds)
        third = max(1, len(scenario.applications) // 3)
        started = asyncio.Event()

        async def inject() -> None:
            nonlocal fault_ended
            await started.wait()
            await fault()
            fault_ended = time.monotonic()

        async def stream() -> None:
            tasks = []
            for i, app in enumerate(scenario.applications):
                if i == third:
                    started.set()
                tasks.append(asyncio.create_task(client.application(app, i % 5 == 0, load)))
                await asyncio.sleep(1.0 / scale.rate)
            started.set()
            await asyncio.gather(*tasks)

        await asyncio.gather(stream(), client.webhooks(scenario.transactions, load), inject())
        load.retries = client.retries
    return load, fault_ended


# ------------------------------------------------------------------------------------ the faults


def _quiet(_line: str) -> None:
    return None


def faults_for(system: System, scale: Scale) -> dict[str, Callable[[], Awaitable[None]]]:
    env = system.env

    def kill(name: str) -> Callable[[], Awaitable[None]]:
        async def fault() -> None:
            await asyncio.to_thread(supervisor.kill, name)
            await asyncio.to_thread(supervisor.start, supervisor.BY_NAME[name], env)

        return fault

    def stop_server(name: str, outage: float) -> Callable[[], Awaitable[None]]:
        async def fault() -> None:
            server = next(s for s in local.servers() if s.name == name)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(outage)
            await asyncio.to_thread(local.up, 180.0, _quiet)

        return fault

    async def replicas() -> None:
        await asyncio.to_thread(supervisor.scale, "scoring", 4, env, echo=_quiet)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(supervisor.scale, "scoring", 3, env, echo=_quiet)

    plan: dict[str, Callable[[], Awaitable[None]]] = {
        f"kill-{name}": kill(name) for name in SERVICE_FAULTS
    }
    plan["restart-kafka"] = stop_server("kafka", 0.0)
    plan["stop-redis"] = stop_server("redis", scale.outage_seconds)
    plan["stop-postgres"] = stop_server("postgres", scale.outage_seconds)
    plan["scoring-replicas"] = replicas
    return plan


# ------------------------------------------------------------------------------------ counting


async def _audit_rows(system: System, prefix: str) -> list[AuditedEvent]:
    async with AuditReader.connect(system.infra.postgres_dsn, system.audit_schema) as audit:
        return await audit.events(prefix)


#: What every application's audit trail holds, whichever path decided it (scoring records a
#: synchronously decided application on loan.applications beside its decision).
TRAIL_TOPICS = frozenset({LOAN_APPLICATIONS, CREDIT_DECISIONS, CREDIT_EXPLANATIONS})


@dataclass
class Trails:
    complete: int
    missing: int
    duplicated: int
    decided: int
    explained: int
    audited_events: set[str]


def trails(rows: Sequence[AuditedEvent], taken: Mapping[str, bool]) -> Trails:
    per_app: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        per_app[row.application_id][row.topic] += 1
    complete = sum(1 for app in taken if TRAIL_TOPICS <= set(per_app.get(app, {})))
    duplicated = sum(
        1
        for counts in per_app.values()
        if counts[CREDIT_DECISIONS] > 1 or counts[CREDIT_EXPLANATIONS] > 1
    )
    return Trails(
        complete=complete,
        missing=len(taken) - complete,
        duplicated=duplicated,
        decided=sum(1 for app in taken if per_app[app][CREDIT_DECISIONS] > 0),
        explained=sum(1 for app in taken if per_app[app][CREDIT_EXPLANATIONS] > 0),
        audited_events={row.event_id for row in rows if row.topic == CREDIT_DECISIONS},
    )


async def _lags_zero(system: System) -> bool:
    for group, topics in system.groups().items():
        async with GroupLagProbe(system.infra, group, topics) as probe:
            if (await probe.sample()).total > 0:
                return False
    return True


async def _topic_counts(
    system: System, topic: str, since: Mapping[TopicPartition, int], prefix: str
) -> Counter[str]:
    """Records per application id of this fault on a topic since the fault began."""
    message = CreditDecision if topic == CREDIT_DECISIONS else CreditExplanation
    ends = await end_offsets(system.infra, [topic])
    counts: Counter[str] = Counter()
    consumer = AIOKafkaConsumer(bootstrap_servers=system.infra.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [tp for tp in ends if ends[tp] > since.get(tp, 0)]
        if not partitions:
            return counts
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp, 0))
        remaining = {tp: ends[tp] - since.get(tp, 0) for tp in partitions}
        async with asyncio.timeout(120):
            while any(n > 0 for n in remaining.values()):
                for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                    remaining[tp] -= len(batch)
                    for record in batch:
                        application_id = str(decode(record.value, message).payload.application_id)  # type: ignore[attr-defined]
                        if application_id.startswith(prefix):
                            counts[application_id] += 1
    finally:
        await consumer.stop()
    return counts


def verify_chain(system: System) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-m", "services.audit", "verify"],
        cwd=REPO,
        env={**os.environ, **system.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode == 0, (done.stdout + done.stderr)[-2000:]


async def run_fault(
    system: System,
    book: LoanBook,
    scale: Scale,
    name: str,
    fault: Callable[[], Awaitable[None]],
    echo: Echo = console.print,
) -> FaultResult:
    prefix = f"chaos{system.run}{FAULTS.index(name)}"
    began = time.monotonic()
    since = await end_offsets(system.infra, [CREDIT_DECISIONS, CREDIT_EXPLANATIONS])
    if name == "scoring-replicas":
        await asyncio.to_thread(supervisor.scale, "scoring", 3, system.env, echo=_quiet)
    echo(f"  {name}: {scale.applications} applications at {scale.rate:g}/s")
    load, fault_ended = await run_load(system, book, scale, prefix, fault)

    recovered: float | None = None
    deadline = time.monotonic() + scale.catch_up_seconds
    rows: list[AuditedEvent] = []
    lags_zero = False
    while time.monotonic() < deadline:
        try:
            rows = await _audit_rows(system, prefix)
            if trails(rows, load.taken).missing == 0:
                lags_zero = await _lags_zero(system)
                if lags_zero:
                    recovered = max(0.0, time.monotonic() - fault_ended)
                    break
        except (OSError, asyncpg.PostgresError):
            pass  # a server still coming back: look again
        await asyncio.sleep(0.5)
    if name == "scoring-replicas":
        await asyncio.to_thread(supervisor.scale, "scoring", 1, system.env, echo=_quiet)

    found = trails(rows, load.taken)
    decisions = await _topic_counts(system, CREDIT_DECISIONS, since, prefix)
    explanations = await _topic_counts(system, CREDIT_EXPLANATIONS, since, prefix)
    verified, verify_output = await asyncio.to_thread(verify_chain, system)
    result = FaultResult(
        fault=name,
        applications=len(load.taken),
        rejected=sum(load.rejected.values()),
        client_retries=load.retries,
        decisions=found.decided,
        explanations=found.explained,
        audit_trails=found.complete,
        lost=found.missing,
        duplicated=found.duplicated,
        topic_duplicates={
            CREDIT_DECISIONS: sum(decisions.values()) - len(decisions),
            CREDIT_EXPLANATIONS: sum(explanations.values()) - len(explanations),
        },
        told_unaudited=len(load.told - found.audited_events),
        chain_verified=verified,
        lags_zero=lags_zero,
        recovery_seconds=None if recovered is None else round(recovered, 1),
        seconds=round(time.monotonic() - began, 1),
    )
    if load.rejected:
        result.notes.append(f"not taken: {dict(load.rejected)}")
    if not verified:
        result.notes.append(f"verify: {verify_output.strip().splitlines()[-1:]}")
    echo(
        f"    taken {result.applications}, lost {result.lost}, duplicated {result.duplicated},"
        f" topic duplicates {sum(result.topic_duplicates.values())},"
        f" chain {'verified' if verified else 'BROKEN'}, recovery {result.recovery_seconds} s,"
        f" {result.seconds} s in all"
    )
    return result


async def run_battery(
    system: System,
    book: LoanBook,
    scale: Scale,
    only: Sequence[str] | None = None,
    echo: Echo = console.print,
) -> list[FaultResult]:
    """Every fault in turn (or those named), each on a system that caught up with the last."""
    plan = faults_for(system, scale)
    unknown = sorted(set(only or ()) - set(plan))
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {list(plan)}")
    results = []
    for name in FAULTS:
        if only and name not in only:
            continue
        results.append(await run_fault(system, book, scale, name, plan[name], echo))
    return results


# ------------------------------------------------------------------------------------ the report


def report(results: Sequence[FaultResult], scale_name: str, model_version: str) -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale_name,
        "scale_settings": asdict(SCALES[scale_name]),
        "model_version": model_version,
        "faults": [asdict(r) | {"passed": r.passed} for r in results],
        "all_passed": all(r.passed for r in results),
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["scale_settings"]
    lines = [
        f"# The chaos battery ({result['scale']})",
        "",
        f"Measured {result['measured_at']} with model `{result['model_version']}`:"
        f" {s['applications']} applications per fault at {s['rate']:g}/s (a fifth"
        f" synchronous), mobile-money webhooks beside them, the fault a third of the way"
        f" through; Redis and PostgreSQL stopped for {s['outage_seconds']:g} s. Written by"
        f" `python -m bench.chaos` (`make chaos`).",
        "",
        "| fault | applications | decisions | explanations | audit trails | lost | duplicated"
        " | topic duplicates (decisions, explanations) | told, unaudited | chain | lags 0"
        " | recovery s | client retries |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for f in result["faults"]:
        dups = f["topic_duplicates"]
        lines.append(
            f"| {f['fault']} | {f['applications']} | {f['decisions']} | {f['explanations']} |"
            f" {f['audit_trails']} | {f['lost']} | {f['duplicated']} |"
            f" {dups[CREDIT_DECISIONS]}, {dups[CREDIT_EXPLANATIONS]} | {f['told_unaudited']} |"
            f" {'verified' if f['chain_verified'] else 'BROKEN'} |"
            f" {'yes' if f['lags_zero'] else 'NO'} | {f['recovery_seconds']} |"
            f" {f['client_retries']} |"
        )
    notes = [f"- {f['fault']}: {n}" for f in result["faults"] for n in f["notes"]]
    verdict = "every fault passed" if result["all_passed"] else "NOT every fault passed"
    lines += ["", f"Verdict: {verdict}.", *(["", *notes] if notes else [])]
    return "\n".join(lines) + "\n"


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    scale: Annotated[str, typer.Option(help="tiny or standard")] = "standard",
    only: Annotated[list[str] | None, typer.Option(help="run only these faults")] = None,
    out: Annotated[Path, typer.Option(help="result file")] = RESULTS / "chaos.json",
) -> None:
    from bench.__main__ import world_of
    from infra.demo import BUNDLE, ensure_model
    from training.sources.synthetic import loan_book_from_world

    if scale not in SCALES:
        raise typer.BadParameter(f"scale must be one of {sorted(SCALES)}")
    console.rule("chaos: servers, model, services")
    local.up()
    manifest = ensure_model()
    book = loan_book_from_world(world_of(manifest))
    run = uuid.uuid4().hex[:8]
    system = start_system(InfraSettings(), system_env(run, BUNDLE), run)
    try:
        console.rule(f"chaos battery ({scale})")
        results = asyncio.run(run_battery(system, book, SCALES[scale], only))
    finally:
        supervisor.down(echo=_quiet)
    result = report(results, scale, str(manifest["version"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    console.print(markdown(result))
    console.print(f"written: {out} and {out.with_suffix('.md')}")
    if not result["all_passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
