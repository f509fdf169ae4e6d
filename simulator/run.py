"""One simulation run: history, an optional wait for the feature store, paced applications, then
(opt-in) the loans core banking disburses for the approved ones and their instalments.

`simulate` is the whole run as a coroutine, so the CLI, `make demo` and end-to-end tests drive the
same code; it returns a `Summary` and never raises for a failed send (those are counted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from rich.text import Text

from services.common.kafka import create_producer
from simulator.approvals import DecisionView, Verdict, learn_verdicts
from simulator.books import load_book
from simulator.events import book_namespace
from simulator.lag import LagWait, wait_for_group
from simulator.loans import DEFAULT_DAYS_LATE, Loan, disburse
from simulator.pacing import Clock, Pacer, achieved_rate
from simulator.payloads import MAX_WEBHOOK_BATCH, count_deliveries, lane_deliveries
from simulator.scenario import ApplicationRequest, Scenario, build_scenario, shocked
from simulator.senders import (
    ApplicationSender,
    GatewayClient,
    KafkaCoreBanking,
    Outcome,
    SyncScoring,
)
from simulator.settings import SimulatorSettings
from training.contract import LoanBook

tracer = trace.get_tracer("alama.simulator")
log = logging.getLogger(__name__)


class Via(StrEnum):
    GATEWAY = "gateway"  # POST /v1/applications: queued, decided asynchronously
    SCORES = "scores"  # POST /v1/scores: scored synchronously, the decision in the answer
    KAFKA = "kafka"


@dataclass(frozen=True)
class SimulationOptions:
    applications: int = 500
    rate: float | None = 50.0  # applications per second; None sends as fast as allowed
    via: Via = Via.GATEWAY
    run_id: str | None = None  # random short id when unset
    history: bool = True
    webhook_batch: int = MAX_WEBHOOK_BATCH
    wait_for_features: bool = True
    wait_timeout_seconds: float = 120.0
    disburse: bool | None = None  # None: the settings' `disburse_loans`
    shock: float = 0.0  # 0..1: an economic shock on the synthesized loans (simulator.loans)
    decision_wait_seconds: float | None = None  # None: the settings'


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class PhaseStats:
    """Live counters of one phase; `planned` is what it will send."""

    name: str
    planned: int = 0
    sent: int = 0
    accepted: int = 0
    items_accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started_at: float | None = None
    finished_at: float | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()

    def finish(self) -> None:
        self.finished_at = time.monotonic()

    def record(self, outcome: Outcome) -> None:
        self.sent += 1
        if outcome.accepted:
            self.accepted += 1
            self.items_accepted += outcome.count
        else:
            self.errors[outcome.status] += 1

    @property
    def seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> PhaseSummary:
        return PhaseSummary(
            sent=self.sent,
            accepted=self.accepted,
            items_accepted=self.items_accepted,
            errors=dict(sorted(self.errors.items())),
            seconds=round(self.seconds, 3),
        )


@dataclass(frozen=True)
class PhaseSummary:
    sent: int
    accepted: int
    items_accepted: int
    errors: dict[str, int]
    seconds: float


class LiveStatus:
    """What the CLI's live view shows, a line per phase; rich calls `__rich__` on each refresh."""

    def __init__(self) -> None:
        self.phases: list[PhaseStats] = []
        self.note = "loading the loan book"

    def show(self, stats: PhaseStats) -> None:
        if stats not in self.phases:
            self.phases.append(stats)

    def __rich__(self) -> Text:
        view = Text()
        for stats in self.phases:
            view.append(f"{stats.name:<13}", style="bold")
            view.append(f" sent {stats.sent:>7}/{stats.planned:<7}")
            view.append(f" accepted {stats.accepted:>7}", style="green")
            errors = sum(stats.errors.values())
            view.append(f" errors {errors:>5}", style="red" if errors else "")
            view.append(f" {stats.rate:8.1f}/s")
            view.append(" done\n" if stats.finished_at is not None else "\n", style="dim")
        if self.note:
            view.append(self.note, style="dim")
        return view


@dataclass(frozen=True)
class FeaturesWait:
    group: str
    caught_up: bool
    seconds: float
    lag: int  # records the group had not committed when the wait ended


@dataclass(frozen=True)
class DisbursementSummary:
    """What the disbursement phase learnt and sent; `verdicts` counts each application's
    (approved and approved_on_review were funded; in_review and undecided were still waiting
    when the wait ended, and got no loan)."""

    verdicts: dict[str, int]
    funded: int
    unsettled: int  # in review or undecided after the wait: no loan
    from_book: int  # loans the book holds for the application
    synthesized: int
    defaulting: int  # loans with an instalment 90+ days late in the 12-month window
    shock: float
    decision_wait_seconds: float
    loans: PhaseSummary
    instalments: PhaseSummary


@dataclass(frozen=True)
class Summary:
    run_id: str
    via: str
    book: str  # the loan book's source name
    book_members: int
    members: int
    webhooks: PhaseSummary
    transactions_sent: int
    repayments: PhaseSummary
    features_wait: FeaturesWait | None
    applications: PhaseSummary
    target_rate: float | None
    achieved_rate: float | None
    max_schedule_lag_seconds: float
    first_application_id: str | None
    last_application_id: str | None
    application_ids: list[str]
    disbursement: DisbursementSummary | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


async def simulate(
    settings: SimulatorSettings,
    options: SimulationOptions,
    *,
    book: LoanBook | None = None,
    http_client: httpx.AsyncClient | None = None,
    live: LiveStatus | None = None,
    clock: Clock | None = None,
) -> Summary:
    """Play core banking and the mobile-money provider for one run; see the module docstring.

    `book` defaults to the one `settings` names (`book`, else the profile's synthetic book)."""
    live = live or LiveStatus()
    run_id = options.run_id or new_run_id()
    if book is None:
        live.note = "loading the loan book"
        book = await asyncio.to_thread(load_book, settings.book, settings.profile)
    live.note = "choosing applications and their history"
    if book.tenant != settings.tenant:
        # its members' features are in Feast under the book's tenant: scoring would find none
        raise ValueError(
            f"the loan book {book.source!r} is tenant {book.tenant!r}'s, but the simulator plays"
            f" tenant {settings.tenant!r}; set ALAMA_SIMULATOR_TENANT (and an API key of it)"
        )
    scenario = await asyncio.to_thread(build_scenario, book, options.applications, run_id)
    scenario = shocked(scenario, options.shock)  # a shock lowers incomes as well as repayments
    namespace = book_namespace(book)
    if not options.history:
        scenario = Scenario(
            run_id, scenario.applications, scenario.transactions[0:0], scenario.repayments[0:0]
        )

    disbursing = settings.disburse_loans if options.disburse is None else options.disburse
    webhooks = PhaseStats("webhooks")
    repayments = PhaseStats("repayments", planned=len(scenario.repayments))
    applications = PhaseStats("applications", planned=len(scenario.applications))
    waited: LagWait | None = None
    pacer = Pacer(options.rate, clock)
    send_times: list[float] = []

    async with AsyncExitStack() as stack:
        needs_http = (
            options.via in (Via.GATEWAY, Via.SCORES)
            or not scenario.transactions.empty
            or disbursing
        )
        needs_kafka = options.via is Via.KAFKA or not scenario.repayments.empty or disbursing
        client = http_client
        if client is None and needs_http:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=settings.gateway_url,
                    timeout=settings.http_timeout_seconds,
                    limits=httpx.Limits(
                        max_connections=settings.concurrency + settings.webhook_lanes
                    ),
                )
            )
        gateway = (
            GatewayClient(
                client,
                api_key=settings.api_key.get_secret_value(),
                webhook_secret=settings.webhook_secret.get_secret_value(),
                tenant=settings.tenant,
                delivery_attempts=settings.webhook_attempts,
            )
            if client is not None
            else None
        )
        core_banking: KafkaCoreBanking | None = None
        if needs_kafka:
            producer = create_producer(settings.infra, client_id="simulator-core-banking")
            await producer.start()
            stack.push_async_callback(producer.stop)
            core_banking = _core_banking(producer, namespace, settings)

        # phase 1: history (webhooks and repayments go side by side)
        live.note = ""
        history: list[Coroutine[Any, Any, None]] = []
        if not scenario.transactions.empty and gateway is not None:
            history.append(_send_webhooks(gateway, scenario, options, settings, webhooks, live))
        if not scenario.repayments.empty and core_banking is not None:
            history.append(_publish_repayments(core_banking, scenario, repayments, live))
        await asyncio.gather(*history)

        # phase 2: let the feature store catch up
        if options.wait_for_features and options.history:
            live.note = f"waiting for consumer group {settings.feature_group} to catch up"
            waited = await wait_for_group(
                settings.infra,
                settings.feature_group,
                [settings.mobile_money_topic, settings.repayments_topic],
                within=options.wait_timeout_seconds,
            )

        # phase 3: applications at the target rate
        sender: ApplicationSender | None = _application_sender(options.via, gateway, core_banking)
        assert sender is not None
        live.note = ""
        live.show(applications)
        applications.start()
        answers: dict[str, Outcome] = {}
        await _send_applications(
            sender,
            scenario.applications,
            pacer,
            settings.concurrency,
            applications,
            send_times,
            answers,
        )
        applications.finish()

        # phase 4 (opt-in): loans for the approved applications, then their instalments
        disbursement: DisbursementSummary | None = None
        if disbursing:
            assert gateway is not None and core_banking is not None
            disbursement = await _disburse(
                gateway, core_banking, book, scenario, answers, options, settings, live
            )

    ids = [a.application_id for a in scenario.applications]
    return Summary(
        run_id=run_id,
        via=str(options.via),
        book=book.source,
        book_members=len(book.members),
        members=len(scenario.members),
        webhooks=webhooks.summary(),
        transactions_sent=len(scenario.transactions),
        repayments=repayments.summary(),
        features_wait=None
        if waited is None
        else FeaturesWait(
            group=settings.feature_group,
            caught_up=waited.caught_up,
            seconds=round(waited.seconds, 3),
            lag=waited.lag.total,
        ),
        applications=applications.summary(),
        target_rate=pacer.rate,
        achieved_rate=achieved_rate(send_times),
        max_schedule_lag_seconds=round(pacer.max_lag_seconds, 3),
        first_application_id=ids[0] if ids else None,
        last_application_id=ids[-1] if ids else None,
        application_ids=ids,
        disbursement=disbursement,
    )


def _core_banking(
    producer: AIOKafkaProducer, namespace: uuid.UUID, settings: SimulatorSettings
) -> KafkaCoreBanking:
    return KafkaCoreBanking(
        producer,
        namespace,
        applications_topic=settings.applications_topic,
        repayments_topic=settings.repayments_topic,
        loans_topic=settings.loans_topic,
        tenant=settings.tenant,
    )


def _application_sender(
    via: Via, gateway: GatewayClient | None, core_banking: KafkaCoreBanking | None
) -> ApplicationSender | None:
    if via is Via.KAFKA:
        return core_banking
    if via is Via.SCORES:
        return None if gateway is None else SyncScoring(gateway)
    return gateway


def funded_applications(
    applications: list[ApplicationRequest], verdicts: dict[str, Verdict]
) -> list[ApplicationRequest]:
    """The applications core banking disburses a loan for, in send order (an application id
    sent twice is funded once)."""
    seen: set[str] = set()
    funded = []
    for application in applications:
        verdict = verdicts.get(application.application_id, Verdict.UNDECIDED)
        if verdict.funded and application.application_id not in seen:
            seen.add(application.application_id)
            funded.append(application)
    return funded


def _defaulting(loan: Loan) -> bool:
    return any(i.days_late >= DEFAULT_DAYS_LATE for i in loan.instalments)


async def _disburse(
    gateway: GatewayClient,
    core_banking: KafkaCoreBanking,
    book: LoanBook,
    scenario: Scenario,
    answers: dict[str, Outcome],
    options: SimulationOptions,
    settings: SimulatorSettings,
    live: LiveStatus,
) -> DisbursementSummary:
    """Learn each accepted application's verdict, then send a loan per funded one and its
    instalments (an application the system did not take is never decided: undecided)."""
    within = (
        settings.decision_wait_seconds
        if options.decision_wait_seconds is None
        else options.decision_wait_seconds
    )
    live.note = f"waiting up to {within:.0f}s for decisions"
    taken = [
        a.application_id
        for a in scenario.applications
        if answers.get(a.application_id, _NOT_SENT).accepted
    ]
    known: dict[str, DecisionView] = {
        i: answer.decision for i, answer in answers.items() if answer.decision is not None
    }
    verdicts = await learn_verdicts(
        gateway,
        taken,
        known=known,
        within=within,
        interval=settings.decision_poll_seconds,
        concurrency=settings.concurrency,
    )
    funded = funded_applications(scenario.applications, verdicts)
    loans = await asyncio.to_thread(disburse, book, funded, shock=options.shock)
    counts = Counter(
        verdicts.get(a.application_id, Verdict.UNDECIDED) for a in scenario.applications
    )
    loan_stats = PhaseStats("loans", planned=len(loans))
    instalment_stats = PhaseStats(
        "instalments", planned=sum(len(loan.instalments) for loan in loans)
    )
    live.note = ""
    for stats, send in (
        (loan_stats, core_banking.publish_loans),
        (instalment_stats, core_banking.publish_instalments),
    ):
        live.show(stats)
        stats.start()
        await send(loans, on_outcome=stats.record)
        stats.finish()
    return DisbursementSummary(
        verdicts={str(v): counts[v] for v in Verdict if counts[v]},
        funded=len(loans),
        unsettled=counts[Verdict.IN_REVIEW] + counts[Verdict.UNDECIDED],
        from_book=sum(not loan.synthesized for loan in loans),
        synthesized=sum(loan.synthesized for loan in loans),
        defaulting=sum(_defaulting(loan) for loan in loans),
        shock=options.shock,
        decision_wait_seconds=within,
        loans=loan_stats.summary(),
        instalments=instalment_stats.summary(),
    )


_NOT_SENT = Outcome(accepted=False, status="not sent", count=0)


async def _send_webhooks(
    gateway: GatewayClient,
    scenario: Scenario,
    options: SimulationOptions,
    settings: SimulatorSettings,
    stats: PhaseStats,
    live: LiveStatus,
) -> None:
    """Each lane sends its deliveries in order, so a member's transactions arrive in order."""
    lanes = settings.webhook_lanes
    stats.planned = count_deliveries(
        scenario.transactions, batch_size=options.webhook_batch, lanes=lanes
    )
    lane_streams = lane_deliveries(
        scenario.transactions, batch_size=options.webhook_batch, lanes=lanes
    )
    live.show(stats)
    stats.start()

    async def run_lane(lane: int) -> None:
        for delivery in lane_streams[lane]:
            stats.record(await gateway.deliver(delivery))

    await asyncio.gather(*(run_lane(lane) for lane in range(lanes)))
    stats.finish()


async def _publish_repayments(
    core_banking: KafkaCoreBanking, scenario: Scenario, stats: PhaseStats, live: LiveStatus
) -> None:
    live.show(stats)
    stats.start()
    await core_banking.publish_repayments(scenario.repayments, on_outcome=stats.record)
    stats.finish()


async def _send_applications(
    sender: ApplicationSender,
    applications: list[ApplicationRequest],
    pacer: Pacer,
    concurrency: int,
    stats: PhaseStats,
    send_times: list[float],
    answers: dict[str, Outcome] | None = None,
) -> None:
    """Open loop: each application goes at its due time (or as soon as a slot frees up).
    `answers` collects each application's outcome by id (what disbursement acts on)."""
    slots = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task[None]] = set()

    async def submit(application: ApplicationRequest) -> None:
        try:
            # a fresh root context: every application starts its own trace
            with tracer.start_as_current_span(
                "submit application",
                context=Context(),
                kind=SpanKind.PRODUCER,
                attributes={"alama.application_id": application.application_id},
            ) as span:
                try:
                    outcome = await sender.submit(application)
                except (Exception, asyncio.CancelledError) as exc:
                    # counted by name like any failed send, never lost with its task; only a
                    # cancellation of this task itself (the run stopping) goes on up
                    task = asyncio.current_task()
                    if isinstance(exc, asyncio.CancelledError) and (
                        task is None or task.cancelling()
                    ):
                        raise
                    log.warning("application %s: %r", application.application_id, exc)
                    outcome = Outcome(accepted=False, status=type(exc).__name__, count=0)
                span.set_attribute("alama.outcome", outcome.status)
            stats.record(outcome)
            if answers is not None:
                answers[application.application_id] = outcome
        finally:
            slots.release()

    pacer.start()
    for index, application in enumerate(applications):
        await pacer.wait_turn(index)
        await slots.acquire()
        send_times.append(pacer.clock.now())
        task = asyncio.create_task(submit(application))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
