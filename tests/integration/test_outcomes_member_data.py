"""The outcomes service's part of members' rights on the real PostgreSQL and broker: every row it
keeps on a member (the decision, the challenger's decision in shadow, the gender and age band, the
loan, its instalments, its outcome) is filed under the member's keyed pseudonym, never the raw id;
an export returns them; an erasure deletes them in the member's tenant only, dated at the request,
and a replay of what the member had sent by then is not stored again, while what came later is
kept (services/outcomes/member_data.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from member_rights.wiring import file_outcomes_under_members
from services.common.envelope import Event, decode, encode, wrap
from services.common.loan_terms import add_months
from services.common.member_exports import ExportRequest, export_request_envelope
from services.common.member_rights import (
    ErasureRequest,
    MemberRef,
    erasure_requested,
    tenant_member_ref,
)
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.loans_pb2 import LoanDisbursed
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberExportPart,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.explanation.store import DecisionStore, StoredDecision
from services.outcomes.consumer import OutcomeFeed
from services.outcomes.member_data import OutcomesErasures, OutcomesHolder
from services.outcomes.rules import outcome_of
from services.outcomes.settings import OutcomesSettings
from services.outcomes.store import (
    MEMBER_TABLES,
    DecisionRow,
    InstalmentRow,
    LoanRow,
    OutcomesStore,
)
from services.outcomes.wiring import open_store, serve

from .kafka_helpers import publish_envelopes, read_topic

pytestmark = pytest.mark.integration

KEY = b"outcomes-it-member-pseudonym-key!!"
TENANT = "sacco-outcomes-md"
OTHER = "sacco-outcomes-other"
ASKED = datetime(2026, 6, 1, 9, tzinfo=UTC)  # when the member asked to be erased
BEFORE = ASKED - timedelta(days=400)  # the loan disbursed then has matured by the request


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, EventEnvelope]] = []

    async def __call__(self, topic: str, envelope: EventEnvelope) -> None:
        self.events.append((topic, envelope))


@pytest.fixture
async def store(infra: InfraSettings) -> AsyncIterator[OutcomesStore]:
    pool = await create_pool(infra, max_size=2)
    store = OutcomesStore(
        pool,
        f"outcomes_md_{uuid.uuid4().hex[:10]}",
        lambda tenant, member: tenant_member_ref(KEY, tenant, member),
    )
    await store.create_schema()
    try:
        yield store
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {store.s} CASCADE")
        await pool.close()


def _application(app: str, member: str, at: datetime, tenant: str) -> LoanApplicationSubmitted:
    a = LoanApplicationSubmitted(
        application_id=app, member_id=member, amount_kes=50_000, term_months=6, tenant_id=tenant
    )
    a.attributes["gender"] = "female"
    a.attributes["age_band"] = "25-34"
    a.applied_at.FromDatetime(at)
    return a


def _decision(app: str, member: str, at: datetime, tenant: str, version: str) -> CreditDecision:
    d = CreditDecision(
        decision_id=f"d-{app}-{version}",
        application_id=app,
        member_id=member,
        model_version=version,
        probability_of_default=0.07,
        score=640,
        band=DecisionBand.DECISION_BAND_APPROVE,
        tenant_id=tenant,
    )
    d.applied_at.FromDatetime(at)
    d.decided_at.FromDatetime(at + timedelta(seconds=1))
    return d


def _loan(app: str, member: str, at: datetime, tenant: str) -> LoanDisbursed:
    loan = LoanDisbursed(
        loan_id=f"L-{app}",
        application_id=app,
        member_id=member,
        tenant_id=tenant,
        principal_kes=50_000,
        term_months=6,
    )
    loan.disbursed_at.FromDatetime(at + timedelta(days=1))
    return loan


def _instalments(app: str, member: str, at: datetime, tenant: str) -> list[RepaymentRecorded]:
    out = []
    for k in range(1, 7):
        due = add_months(at + timedelta(days=1), k)
        r = RepaymentRecorded(
            repayment_id=f"L-{app}:{k}",
            member_id=member,
            loan_id=f"L-{app}",
            amount_due_kes=9_000,
            amount_paid_kes=9_000,
            days_late=3,
            tenant_id=tenant,
        )
        r.due_date.FromDatetime(due)
        r.recorded_at.FromDatetime(due + timedelta(days=3))
        out.append(r)
    return out


def _history(app: str, member: str, at: datetime, tenant: str = TENANT) -> dict[str, list[Any]]:
    """Everything the outcomes service reads about one application, by feed handler."""
    return {
        "application": [_application(app, member, at, tenant)],
        "decision": [_decision(app, member, at, tenant, "v-champion")],
        "shadow_decision": [_decision(app, member, at, tenant, "v-challenger")],
        "loan": [_loan(app, member, at, tenant)],
        "repayment": _instalments(app, member, at, tenant),
    }


async def _feed(store: OutcomesStore, *histories: dict[str, list[Any]]) -> list[EventEnvelope]:
    """Through the consumer's own handlers, one batch; returns the outcomes it published."""
    sent = Sent()
    feed = OutcomeFeed(store, sent, "outcomes")
    for history in histories:
        for handler, payloads in history.items():
            for payload in payloads:
                await getattr(feed, handler)(Event(wrap(payload, producer="test"), payload), None)
    await feed.flush()
    return [envelope for _topic, envelope in sent.events]


async def _counts(store: OutcomesStore) -> dict[str, int]:
    return {
        table: await store.pool.fetchval(f"SELECT count(*) FROM {store.s}.{table}")
        for table in MEMBER_TABLES
    }


async def _erase_by_event(
    store: OutcomesStore, member: MemberRef, asked: datetime = ASKED
) -> MemberErasureCompleted:
    sent = Sent()
    message = erasure_requested(ErasureRequest("erasure-it-1", member, "jwt:dpo", asked))
    await OutcomesErasures(store, sent, "completed", "outcomes").handle(
        Event(wrap(message, producer="gateway"), message)
    )
    [(topic, envelope)] = sent.events
    assert topic == "completed"
    return decode(encode(envelope), MemberErasureCompleted).payload


async def test_a_members_rows_are_filed_by_pseudonym_exported_erased_and_kept_out_of_replays(
    store: OutcomesStore,
) -> None:
    member, kept = "M-outcomes-erased", "M-outcomes-kept"
    published = await _feed(
        store,
        _history("A1", member, BEFORE),
        _history("A2", kept, BEFORE),
        _history("A3", member, BEFORE, tenant=OTHER),  # another SACCO's member of the same id
    )
    assert len(published) == 3, "each loan matured: its outcome was recorded and published"
    everything = await _counts(store)
    assert everything == {
        "outcomes": 3,
        "instalments": 18,
        "loans": 3,
        "shadow_decisions": 3,
        "applicant_groups": 3,
        "decisions": 3,
    }
    for table in MEMBER_TABLES:  # no raw member id anywhere, each row filed by pseudonym
        rows = await store.pool.fetch(f"SELECT * FROM {store.s}.{table}")
        assert all(r["member_ref"] and r["member_ref"].startswith("tmbr_") for r in rows), table
        assert not [r for r in rows if "M-outcomes" in json.dumps(dict(r), default=str)], table

    ref = MemberRef.of(TENANT, member, KEY)
    holder = OutcomesHolder(store)
    assert await holder.holds(ref)
    assert not await holder.holds(MemberRef.of(TENANT, "M-never-seen", KEY))
    data = await holder.export(ref)
    assert json.loads(json.dumps(data)) == data, "JSON-ready"
    assert {table: len(rows) for table, rows in data.items()} == {
        "decisions": 1,
        "applicant_groups": 1,
        "shadow_decisions": 1,
        "loans": 1,
        "instalments": 6,
        "outcomes": 1,
    }
    [decision] = data["decisions"]
    assert (decision["application_id"], decision["band"]) == ("A1", "approve")
    assert data["applicant_groups"][0]["gender"] == "female"
    assert data["outcomes"][0]["defaulted"] is False
    assert "member_ref" not in decision and "published" not in data["outcomes"][0]

    completion = await _erase_by_event(store, ref)
    assert (completion.store, completion.member_held) == ("outcomes", True)
    assert completion.records_erased == 1 + 6 + 1 + 1 + 1 + 1
    assert not await holder.holds(ref)
    assert all(rows == [] for rows in (await holder.export(ref)).values())
    assert await store.holds_member(TENANT, kept)
    assert await store.holds_member(OTHER, member), "the tenant's member only"
    assert sum((await _counts(store)).values()) == sum(everything.values()) - 11
    [erased] = await store.pool.fetch(f"SELECT * FROM {store.s}.erased_members")
    assert erased["member_ref"] == tenant_member_ref(KEY, TENANT, member)  # no raw id
    assert erased["erased_at"] == ASKED

    # the topics redelivered: what the member had sent by the request stays out, and no outcome
    # is published for it again
    assert await _feed(store, _history("A1", member, BEFORE)) == []
    assert not await holder.holds(ref)

    # the member applied again after asking: that one is theirs to keep
    later = ASKED + timedelta(hours=1)
    await _feed(store, {"application": [_application("A4", member, later, TENANT)]})
    await _feed(store, {"decision": [_decision("A4", member, later, TENANT, "v-champion")]})
    assert [d["application_id"] for d in (await holder.export(ref))["decisions"]] == ["A4"]

    again = await _erase_by_event(store, ref)  # a redelivered request: nothing of before left
    assert (again.records_erased, again.member_held) == (0, True)
    assert await holder.erase(ref) == 2  # the CLI's direct path: now, and everything
    assert not await holder.holds(ref)


async def test_what_derives_from_the_members_applications_goes_with_them_pseudonym_or_not(
    store: OutcomesStore,
) -> None:
    """A loan and its instalments stored before rows carried pseudonyms (or disbursed after the
    request, for an application made before it) are the member's through the application: the
    outcome takes the decision's pseudonym, the export shows them, the erasure takes them."""
    member = "M-outcomes-legacy"
    ref = store.ref(TENANT, member)
    approve = int(DecisionBand.DECISION_BAND_APPROVE)
    await store.add_decisions(
        [DecisionRow(TENANT, "A9", "d-A9", "v1", 0.07, approve, BEFORE, BEFORE, ref)]
    )
    disbursed = ASKED + timedelta(days=1)  # after the request: still the application's loan
    await store.add_loans([LoanRow(TENANT, "L-A9", "A9", 6, 50_000.0, disbursed)])  # no ref
    dues = [add_months(disbursed, k) for k in range(1, 7)]
    await store.add_instalments(
        [InstalmentRow(TENANT, "L-A9", due, 3, due + timedelta(days=3)) for due in dues]
    )
    [pending] = await store.pending()
    known = outcome_of(pending.loan.disbursed_at, pending.loan.term_months, pending.instalments)
    assert known is not None
    await store.record(pending, known)
    assert await store.pool.fetchval(f"SELECT member_ref FROM {store.s}.outcomes") == ref
    # a second loan, still young: found only through its application
    await store.add_decisions(
        [DecisionRow(TENANT, "A10", "d-A10", "v1", 0.07, approve, BEFORE, BEFORE, ref)]
    )
    await store.add_loans([LoanRow(TENANT, "L-A10", "A10", 6, 50_000.0, BEFORE)])
    await store.add_instalments(
        [InstalmentRow(TENANT, "L-A10", due, 0, due) for due in dues[:2]]  # no ref either
    )

    data = await store.member_data(TENANT, member)
    assert {table: len(rows) for table, rows in data.items()} == {
        "decisions": 2,
        "applicant_groups": 0,
        "shadow_decisions": 0,
        "loans": 2,
        "instalments": 8,
        "outcomes": 1,
    }
    assert await store.erase_member(TENANT, member, erased_at=ASKED) == 2 + 2 + 8 + 1
    assert sum((await _counts(store)).values()) == 0


async def test_rows_stored_before_pseudonyms_are_filed_by_the_operator_tool(
    infra: InfraSettings, store: OutcomesStore
) -> None:
    """An upgraded outcomes service holds rows without pseudonyms, which no export or erasure
    finds; `python -m member_rights file-outcomes` files them under their members from the
    decision store's member ids (once: a second run files nothing)."""
    member, other = "M-outcomes-before", "M-outcomes-before-2"
    legacy = OutcomesStore(store.pool, store.s)  # as before the upgrade: no pseudonym key
    histories = [_history("A7", member, BEFORE), _history("A8", other, BEFORE, tenant=OTHER)]
    await _feed(legacy, *histories)
    assert not await store.holds_member(TENANT, member)  # unfindable: nothing carries its ref

    decisions = DecisionStore(store.pool, f"explanation_md_{uuid.uuid4().hex[:10]}")
    await decisions.create_schema()
    try:
        await decisions.save_decisions(
            [StoredDecision(h["decision"][0]) for h in histories]  # the champion's decisions
        )
        filed = await file_outcomes_under_members(
            infra, KEY, explanation_schema=decisions.schema, outcomes_schema=store.s, page=1
        )
        again = await file_outcomes_under_members(
            infra, KEY, explanation_schema=decisions.schema, outcomes_schema=store.s
        )
    finally:
        await store.pool.execute(f"DROP SCHEMA {decisions.schema} CASCADE")
    assert (filed, again) == (2 * 11, 0)  # every row of both applications, once
    assert await store.holds_member(TENANT, member) and await store.holds_member(OTHER, other)
    assert await store.erase_member(TENANT, member) == 11
    assert await store.holds_member(OTHER, other)


# --- through the service, on the broker ---------------------------------------------------


@pytest.fixture
async def settings(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[OutcomesSettings]:
    run = uuid.uuid4().hex[:10]
    names = ["decisions", "reviews", "loans", "repayments", "outcomes", "shadow", "applications"]
    names += ["alerts", "erasures", "completed", "exports", "parts"]
    topics = {name: f"test.outcomes_md.{name}.{run}" for name in names}
    await ensure_topics(infra, [TopicSpec(topic, 1, 1) for topic in topics.values()])
    settings = OutcomesSettings(
        infra=infra,
        db_schema=f"outcomes_mds_{run}",
        consumer_group=f"outcomes-md-{run}",
        decisions_topic=topics["decisions"],
        review_outcomes_topic=topics["reviews"],
        loans_topic=topics["loans"],
        repayments_topic=topics["repayments"],
        outcomes_topic=topics["outcomes"],
        shadow_topic=topics["shadow"],
        applications_topic=topics["applications"],
        performance_alerts_topic=topics["alerts"],
        erasures_topic=topics["erasures"],
        erasures_completed_topic=topics["completed"],
        exports_topic=topics["exports"],
        export_parts_topic=topics["parts"],
        bundle_root=str(tmp_path),
        metrics_port=0,
        consumer_fetch_max_wait_ms=20,
    )
    try:
        yield settings
    finally:
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


async def _events(infra: InfraSettings, topic: str, *payloads: Message) -> None:
    await publish_envelopes(infra, topic, [wrap(p, producer="core", subject="s") for p in payloads])


async def _until_held(store: OutcomesStore, member: str) -> None:
    async with asyncio.timeout(30):
        while not await store.holds_member(TENANT, member):  # noqa: ASYNC110 - polled state
            await asyncio.sleep(0.2)


async def test_the_service_answers_an_export_and_an_erasure_on_the_broker(
    infra: InfraSettings, settings: OutcomesSettings
) -> None:
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop))
    store = await open_store(settings)
    key = settings.member_pseudonym_key.get_secret_value().encode()
    member = MemberRef.of(TENANT, "M-broker", key)
    applied = datetime.now(UTC) - timedelta(days=3)  # before the request, made now
    try:
        await _events(
            infra, settings.decisions_topic, _decision("B1", "M-broker", applied, TENANT, "v1")
        )
        await _events(infra, settings.loans_topic, _loan("B1", "M-broker", applied, TENANT))
        await _until_held(store, "M-broker")

        export = ExportRequest.new(member, "jwt:dpo")
        await publish_envelopes(
            infra, settings.exports_topic, [export_request_envelope(export, "gateway")]
        )
        [record] = await read_topic(infra, settings.export_parts_topic, 1)
        part = decode(record.value, MemberExportPart).payload
        assert (part.request_id, part.store, part.member_held) == (
            export.request_id,
            "outcomes",
            True,
        )
        data = json.loads(part.data_json)
        assert [d["application_id"] for d in data["decisions"]] == ["B1"]
        assert [x["loan_id"] for x in data["loans"]] == ["L-B1"]

        request = ErasureRequest.new(member, "jwt:dpo")
        envelope = wrap(
            erasure_requested(request),
            producer="gateway",
            subject=request.request_id,
            event_id=request.request_id,
        )
        await publish_envelopes(infra, settings.erasures_topic, [envelope])
        [record] = await read_topic(infra, settings.erasures_completed_topic, 1)
        completion = decode(record.value, MemberErasureCompleted).payload
        assert (completion.request_id, completion.store) == (request.request_id, "outcomes")
        assert (completion.records_erased, completion.member_held) == (2, True)
        assert b"M-broker" not in record.value  # the member appears by pseudonym only
        assert not await store.holds_member(TENANT, "M-broker")

        # a replay of the member's decision, then another member's: once the second is kept
        # the first has been through the consumer, and is not stored again
        await _events(
            infra,
            settings.decisions_topic,
            _decision("B1", "M-broker", applied, TENANT, "v1"),
            _decision("B2", "M-next", applied, TENANT, "v1"),
        )
        await _until_held(store, "M-next")
        assert not await store.holds_member(TENANT, "M-broker")
    finally:
        stop.set()
        await asyncio.wait_for(service, timeout=30)
        await store.pool.close()
