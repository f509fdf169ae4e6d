"""The console on the real broker and PostgreSQL: the queue fills from the topics, one person
holds an item at a time, outcomes are published before an item closes, four eyes where the
tenant's rules ask for them, and sign-in locks out after repeated failures."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.reviews_pb2 import (
    AppealLodged,
    ReviewKind,
    ReviewOutcome,
)
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.console.app import Console
from services.console.people import Role
from services.console.review import Proposal, ReviewRefused
from services.console.settings import ConsoleSettings
from services.console.store import AWAITING_SECOND, CLOSED
from services.console.wiring import build_console

from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration

TENANT = "sacco-it"
PASSWORD = "correct horse battery staple"


@dataclass
class Running:
    console: Console
    settings: ConsoleSettings


@pytest.fixture
async def running(infra: InfraSettings) -> AsyncIterator[Running]:
    run = uuid.uuid4().hex[:10]
    names = ("apps", "dec", "rev", "appeals", "erase", "erased", "export", "parts")
    topics = [TopicSpec(f"test.console.{name}.{run}", 3, 1) for name in names]
    await ensure_topics(infra, topics)
    settings = ConsoleSettings(
        infra=infra,
        db_schema=f"console_it_{run}",
        consumer_group=f"console-it-{run}",
        applications_topic=topics[0].name,
        decisions_topic=topics[1].name,
        review_outcomes_topic=topics[2].name,
        appeals_topic=topics[3].name,
        erasures_topic=topics[4].name,  # the real ones would answer other tests' requests
        erasures_completed_topic=topics[5].name,
        exports_topic=topics[6].name,
        export_parts_topic=topics[7].name,
        explanation_target="127.0.0.1:1",  # nothing there: pages say the explanation is away
        four_eyes_amount_kes=100_000,
        lockout_failures=3,
    )
    console = await build_console(settings)
    try:
        yield Running(console, settings)
    finally:
        for close in reversed(console.closers):
            await close()
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


def _decision(app_id: str, band: int, *, tenant: str = TENANT) -> CreditDecision:
    decision = CreditDecision(
        decision_id=f"d-{app_id}",
        application_id=app_id,
        member_id=f"m-{app_id}",
        model_version="v-it",
        probability_of_default=0.2,
        score=610,
        band=band,  # type: ignore[arg-type]
        tenant_id=tenant,
        repayment_attention=[1 / 24] * 24,
    )
    decision.decided_at.GetCurrentTime()
    return decision


def _application(app_id: str, amount: float) -> LoanApplicationSubmitted:
    application = LoanApplicationSubmitted(
        application_id=app_id,
        member_id=f"m-{app_id}",
        amount_kes=amount,
        term_months=12,
        tenant_id=TENANT,
        product=1,  # type: ignore[arg-type]
    )
    application.applied_at.GetCurrentTime()
    return application


async def _feed(
    running: Running,
    applications: list[LoanApplicationSubmitted],
    decisions: list[CreditDecision],
) -> None:
    producer = create_producer(running.settings.infra, client_id="console-it")
    await producer.start()
    try:
        for a in applications:
            envelope = wrap(a, producer="core", subject=a.application_id)
            await (await publish(producer, running.settings.applications_topic, envelope))
        for d in decisions:
            envelope = wrap(d, producer="scoring", subject=d.application_id)
            await (await publish(producer, running.settings.decisions_topic, envelope))
    finally:
        await producer.stop()


async def _wait_for_items(running: Running, count: int, tenant: str = TENANT) -> None:
    async with asyncio.timeout(60):
        while len(await running.console.store.queue(tenant, states=["open"], limit=100)) < count:  # noqa: ASYNC110 - polled from PostgreSQL
            await asyncio.sleep(0.2)


async def _people(running: Running) -> dict[str, object]:
    people = running.console.people
    return {
        "alice": await people.add(
            tenant=TENANT,
            username="alice",
            display_name="Alice",
            role=Role.RISK_OFFICER,
            password=PASSWORD,
        ),
        "bob": await people.add(
            tenant=TENANT,
            username="bob",
            display_name="Bob",
            role=Role.CREDIT_MANAGER,
            password=PASSWORD,
        ),
        "carol": await people.add(
            tenant=TENANT,
            username="carol",
            display_name="Carol",
            role=Role.LOAN_OFFICER,
            password=PASSWORD,
        ),
        "eve": await people.add(
            tenant="other-sacco",
            username="eve",
            display_name="Eve",
            role=Role.RISK_OFFICER,
            password=PASSWORD,
        ),
    }


async def test_review_decisions_enter_the_queue_once_and_one_person_settles_each(
    running: Running,
) -> None:
    small, big = _application("a-small", 50_000), _application("a-big", 400_000)
    decisions = [
        _decision("a-small", DecisionBand.DECISION_BAND_REVIEW),
        _decision("a-big", DecisionBand.DECISION_BAND_REVIEW),
        _decision("a-ok", DecisionBand.DECISION_BAND_APPROVE),
        _decision("a-no", DecisionBand.DECISION_BAND_DECLINE),
    ]
    await _feed(running, [small, big], decisions)
    await _feed(running, [], decisions[:2])  # redelivered: nothing enters twice
    await _wait_for_items(running, 2)
    await asyncio.sleep(1)
    store, desk = running.console.store, running.console.desk
    queue = await store.queue(TENANT, states=["open"], limit=100)
    assert sorted(i.decision.application_id for i in queue) == ["a-big", "a-small"]
    assert {
        i.decision.application_id: i.application.amount_kes for i in queue if i.application
    } == {
        "a-small": 50_000,
        "a-big": 400_000,
    }
    who = await _people(running)
    alice, bob, carol, eve = who["alice"], who["bob"], who["carol"], who["eve"]

    # another tenant's officer cannot see or hold it; a loan officer may read but not settle
    assert await store.item("other-sacco", "d-a-small") is None
    with pytest.raises(ReviewRefused):
        await desk.claim(eve, "d-a-small")  # type: ignore[arg-type]
    with pytest.raises(ReviewRefused) as refused:
        await desk.claim(carol, "d-a-small")  # type: ignore[arg-type]
    assert refused.value.status == 403

    # two people race for one item: exactly one holds it
    results = await asyncio.gather(
        desk.claim(alice, "d-a-small"),  # type: ignore[arg-type]
        desk.claim(bob, "d-a-small"),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    holders = [r for r in results if not isinstance(r, BaseException)]
    assert len(holders) == 1
    holder = alice if holders[0].claimed_by == alice.account_id else bob  # type: ignore[union-attr]

    settled = await desk.decide(
        holder,  # type: ignore[arg-type]
        "d-a-small",
        Proposal("approve", ("REVIEW_INCOME_VERIFIED",), "Payslips for six months verified."),
    )
    assert settled.closed and settled.review_id
    item = await store.item(TENANT, "d-a-small")
    assert item is not None and item.state == CLOSED
    assert item.final_band == DecisionBand.DECISION_BAND_APPROVE

    # above the tenant's amount: a second person must confirm, and not the proposer
    await desk.claim(alice, "d-a-big")  # type: ignore[arg-type]
    waiting = await desk.decide(
        alice,  # type: ignore[arg-type]
        "d-a-big",
        Proposal("approve", ("REVIEW_GUARANTORS",), "Two guarantors pledged their shares."),
    )
    assert not waiting.closed and "above" in (waiting.waiting_because or "")
    item = await store.item(TENANT, "d-a-big")
    assert item is not None and item.state == AWAITING_SECOND
    with pytest.raises(ReviewRefused):
        await desk.claim(alice, "d-a-big")  # type: ignore[arg-type]
    await desk.claim(bob, "d-a-big")  # type: ignore[arg-type]
    confirmed = await desk.confirm(bob, "d-a-big")  # type: ignore[arg-type]
    assert confirmed.closed

    records = await read_topic(running.settings.infra, running.settings.review_outcomes_topic, 2)
    outcomes = {
        r.payload.application_id: r.payload
        for r in (decode(rec.value, ReviewOutcome) for rec in records)
    }
    first, second = outcomes["a-small"], outcomes["a-big"]
    assert first.review_id == settled.review_id
    assert first.reviewer_id == holder.username  # type: ignore[union-attr]
    assert first.second_reviewer_id == ""
    assert list(first.reason_codes) == ["REVIEW_INCOME_VERIFIED"]
    assert first.kind == ReviewKind.REVIEW_KIND_BAND and first.tenant_id == TENANT
    assert first.original_band == DecisionBand.DECISION_BAND_REVIEW
    assert first.final_band == DecisionBand.DECISION_BAND_APPROVE
    assert (second.reviewer_id, second.second_reviewer_id) == ("alice", "bob")
    actions = [a.action for a in await store.actions(TENANT, "d-a-big")]
    assert actions == ["claim", "propose", "claim", "close"]


async def test_an_outcome_the_broker_did_not_take_leaves_the_item_unsettled(
    running: Running,
) -> None:
    await _feed(
        running,
        [_application("a-1", 10_000)],
        [_decision("a-1", DecisionBand.DECISION_BAND_REVIEW)],
    )
    await _wait_for_items(running, 1)
    alice = (await _people(running))["alice"]
    desk = running.console.desk

    async def broker_away(_outcome: ReviewOutcome) -> None:
        raise TimeoutError("no ack from the broker")

    working, desk.publish = desk.publish, broker_away
    await desk.claim(alice, "d-a-1")  # type: ignore[arg-type]
    proposal = Proposal("decline", ("REVIEW_ARREARS",), "Arrears of two months on a loan.")
    with pytest.raises(TimeoutError):
        await desk.decide(alice, "d-a-1", proposal)  # type: ignore[arg-type]
    item = await running.console.store.item(TENANT, "d-a-1")
    assert item is not None and item.state == "claimed"  # still hers, not settled
    desk.publish = working
    assert (await desk.decide(alice, "d-a-1", proposal)).closed  # type: ignore[arg-type]


async def test_sign_in_locks_after_repeated_failures_and_sessions_expire(
    running: Running,
) -> None:
    people = running.console.people
    await _people(running)
    ok = await people.sign_in(TENANT, "alice", PASSWORD)
    assert ok.token is not None
    session = await people.session(ok.token)
    assert session is not None and session.account.username == "alice"
    assert await people.session("forged-token") is None

    for _ in range(running.settings.lockout_failures):
        assert (await people.sign_in(TENANT, "alice", "wrong password!")).token is None
    locked = await people.sign_in(TENANT, "alice", PASSWORD)
    assert locked.token is None and "locked" in (locked.refused or "")
    unknown = await people.sign_in(TENANT, "nobody", PASSWORD)
    wrong = await people.sign_in(TENANT, "bob", "wrong password!")
    assert unknown.refused == wrong.refused  # an unknown user reads as a wrong password

    await people.sign_out(ok.token)
    assert await people.session(ok.token) is None

    running.settings.session_idle_minutes = 0.005  # 0.3 s
    bob = await people.sign_in(TENANT, "bob", PASSWORD)
    assert await people.session(bob.token) is not None
    await asyncio.sleep(0.6)
    assert await people.session(bob.token) is None


async def test_one_appeal_applied_twice_at_once_is_recorded_once(running: Running) -> None:
    """The console applies the appeal it lodged while its consumer applies the same event read
    back from the topic: whichever comes second finds it there."""
    await _feed(running, [_application("a-race", 20_000)], [_decision("a-race", 3)])
    await _wait_for_items(running, 0)
    store = running.console.store
    async with asyncio.timeout(30):
        while await store.decision(TENANT, "d-a-race") is None:  # noqa: ASYNC110 - polled
            await asyncio.sleep(0.1)
    for attempt in range(5):
        appeal = dict(
            tenant=TENANT,
            decision_id="d-a-race",
            appeal_id=f"appeal-race-{attempt}",
            lodged_by="carol",
            channel="console",
            grounds="The member's arrears were cleared last week.",
        )
        results = await asyncio.gather(store.add_appeal(**appeal), store.add_appeal(**appeal))
        assert sorted(results) == [False, True]  # type: ignore[type-var]
    history = [a.action for a in await store.actions(TENANT, "d-a-race")]
    assert history.count("appeal") == 5


async def test_an_appeal_puts_a_decision_back_in_the_queue_with_its_history(
    running: Running,
) -> None:
    """Lodged by an officer in the console (published, then applied) or by a partner through
    the API (consumed from credit.appeals): the decision re-enters the queue as an appeal and
    its outcome says which appeal it answers; overriding a decline needs a second person."""
    await _feed(
        running,
        [_application("a-rev", 20_000), _application("a-no", 20_000)],
        [
            _decision("a-rev", DecisionBand.DECISION_BAND_REVIEW),
            _decision("a-no", DecisionBand.DECISION_BAND_DECLINE),
        ],
    )
    await _wait_for_items(running, 1)
    who = await _people(running)
    alice, bob, carol = who["alice"], who["bob"], who["carol"]
    store, desk = running.console.store, running.console.desk

    await desk.claim(alice, "d-a-rev")  # type: ignore[arg-type]
    declined = Proposal("decline", ("REVIEW_ARREARS",), "Arrears of two months on a loan.")
    await desk.decide(alice, "d-a-rev", declined)  # type: ignore[arg-type]
    with pytest.raises(ReviewRefused) as short:
        await desk.lodge_appeal(carol, "d-a-rev", "unfair")  # type: ignore[arg-type]
    assert short.value.status == 422
    appeal_id = await desk.lodge_appeal(
        carol,  # type: ignore[arg-type]
        "d-a-rev",
        "The arrears were cleared last week; the member has the receipt.",
    )
    item = await store.item(TENANT, "d-a-rev")
    assert item is not None and (item.state, item.kind) == ("open", ReviewKind.REVIEW_KIND_APPEAL)
    assert item.appeal_id == appeal_id and item.final_band is None
    history = [a.action for a in await store.actions(TENANT, "d-a-rev")]
    assert history == ["claim", "close", "appeal"]

    # a partner's appeal through the API arrives on the topic, for a decline nobody reviewed
    api_appeal = AppealLodged(
        appeal_id="appeal-api-1",
        decision_id="d-a-no",
        application_id="a-no",
        tenant_id=TENANT,
        lodged_by="partner-key-1",
        channel="api",
        grounds="The member's salary was paid into another account.",
    )
    api_appeal.lodged_at.GetCurrentTime()
    producer = create_producer(running.settings.infra, client_id="console-it-appeals")
    await producer.start()
    try:
        for _ in range(2):  # redelivered: it opens the item once
            envelope = wrap(api_appeal, producer="gateway", event_id=api_appeal.appeal_id)
            await (await publish(producer, running.settings.appeals_topic, envelope))
    finally:
        await producer.stop()
    await _wait_for_items(running, 2)
    await desk.claim(alice, "d-a-no")  # type: ignore[arg-type]
    overriding = Proposal("approve", ("REVIEW_INCOME_VERIFIED",), "Salary verified at the bank.")
    waiting = await desk.decide(alice, "d-a-no", overriding)  # type: ignore[arg-type]
    assert not waiting.closed and "overrides a decline" in (waiting.waiting_because or "")
    await desk.claim(bob, "d-a-no")  # type: ignore[arg-type]
    assert (await desk.confirm(bob, "d-a-no")).closed  # type: ignore[arg-type]
    assert [a.action for a in await store.actions(TENANT, "d-a-no")].count("appeal") == 1

    records = await read_topic(running.settings.infra, running.settings.review_outcomes_topic, 2)
    outcomes = [decode(r.value, ReviewOutcome).payload for r in records]
    answered = next(o for o in outcomes if o.decision_id == "d-a-no")
    assert answered.kind == ReviewKind.REVIEW_KIND_APPEAL and answered.appeal_id == "appeal-api-1"
    assert answered.original_band == DecisionBand.DECISION_BAND_DECLINE
    assert answered.final_band == DecisionBand.DECISION_BAND_APPROVE
    lodged = await read_topic(running.settings.infra, running.settings.appeals_topic, 3)
    assert {decode(r.value, AppealLodged).payload.appeal_id for r in lodged} == {
        appeal_id,
        "appeal-api-1",
    }


async def test_a_members_data_in_the_console_is_exported_and_erased_for_good(
    running: Running,
) -> None:
    """The console's part of members' rights: export everything it holds on the member
    (applications with their protected attributes, decisions, review actions), erase it in
    the tenant only, answer on member.erasures.completed, and never store a redelivered event
    of the erased member again."""
    from services.common.envelope import Event
    from services.common.member_exports import ExportAnswer, ExportRequest, export_requested
    from services.common.member_rights import ErasureRequest, MemberRef, erasure_requested
    from services.common.protos.alama.events.v1.members_pb2 import (
        MemberErasureCompleted,
        MemberExportPart,
    )
    from services.console.member_data import ConsoleErasures, ConsoleHolder

    ours = _application("a-gone", 30_000)
    ours.attributes["gender"] = "female"
    decision = _decision("a-gone", DecisionBand.DECISION_BAND_REVIEW)
    twin = _decision("a-twin", DecisionBand.DECISION_BAND_REVIEW, tenant="other-sacco")
    twin.member_id = decision.member_id  # the same member id in another SACCO: another member
    await _feed(running, [ours], [decision, twin])
    await _wait_for_items(running, 1)
    store = running.console.store
    alice = (await _people(running))["alice"]
    await running.console.desk.claim(alice, "d-a-gone")  # type: ignore[arg-type]

    sent: list[tuple[str, EventEnvelope]] = []

    async def send(topic: str, envelope: EventEnvelope) -> None:
        sent.append((topic, envelope))

    member = MemberRef.of(TENANT, decision.member_id, b"k" * 32)
    export = export_requested(ExportRequest.new(member, "dpo"))
    answer = ExportAnswer([ConsoleHolder(store)], send, "parts", "console")
    await answer.handle(Event(wrap(export, producer="gateway"), export))
    [(topic, part_envelope)] = sent
    part = decode(part_envelope.SerializeToString(), MemberExportPart).payload
    data = json.loads(part.data_json)
    assert topic == "parts" and part.store == "console" and part.member_held
    assert [a["gender"] for a in data["applications"]] == ["female"]
    assert [d["decision_id"] for d in data["decisions"]] == ["d-a-gone"]
    assert [a["action"] for a in data["review_actions"]] == ["claim"]

    request = ErasureRequest.new(member, "dpo")
    requested = erasure_requested(request)
    erasures = ConsoleErasures(store, send, "completed", "console")
    await erasures.handle(Event(wrap(requested, producer="gateway"), requested))
    completion = decode(sent[-1][1].SerializeToString(), MemberErasureCompleted).payload
    assert (completion.store, completion.member_held) == ("console", True)
    assert completion.records_erased == 3  # the application, the decision, the action
    assert not await store.holds_member(TENANT, decision.member_id)
    assert await store.item(TENANT, "d-a-gone") is None
    assert await store.holds_member("other-sacco", decision.member_id)  # the twin is kept

    await store.add_applications([ours])  # redelivered from the topics after the erasure
    await store.add_decisions([decision], entered_at=datetime.now(UTC))
    assert not await store.holds_member(TENANT, decision.member_id)
