"""The retrainer's part of members' rights on the real PostgreSQL (and, through the service, the
real broker): it exports the applications it keeps for training and their outcomes, erases them
in the member's tenant only, remembers the erasure by a keyed pseudonym (never the raw id), and
so does not store a replayed application from before the erasure again, while one made after it
is kept; an erasure answered late is dated at the request (services/retrainer/member_data.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.envelope import Event, decode, encode, wrap
from services.common.member_exports import ExportRequest, export_request_envelope
from services.common.member_rights import (
    ErasureRequest,
    MemberRef,
    erasure_requested,
    tenant_member_ref,
)
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import (
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberExportPart,
)
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.retrainer.member_data import RetrainerErasures, RetrainerHolder
from services.retrainer.settings import RetrainerSettings
from services.retrainer.store import ApplicationRow, OutcomeRow, RetrainerStore
from services.retrainer.wiring import open_store, serve

from .kafka_helpers import publish_envelopes, read_topic

pytestmark = pytest.mark.integration

KEY = b"retrainer-it-member-pseudonym-key!"
TENANT = "sacco-retrain-md"
OTHER = "sacco-retrain-other"
ASKED = datetime(2026, 6, 1, 9, tzinfo=UTC)  # when the member asked to be erased
BEFORE = ASKED - timedelta(days=30)


@pytest.fixture
async def store(infra: InfraSettings) -> AsyncIterator[RetrainerStore]:
    pool = await create_pool(infra, max_size=2)
    store = RetrainerStore(
        pool,
        f"retrainer_md_{uuid.uuid4().hex[:10]}",
        lambda tenant, member: tenant_member_ref(KEY, tenant, member),
    )
    await store.create_schema()
    try:
        yield store
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {store.s} CASCADE")
        await pool.close()


def _row(application_id: str, member: str, at: datetime, tenant: str = TENANT) -> ApplicationRow:
    return ApplicationRow(tenant, application_id, member, "emergency", 12_000.0, 6, at)


def _outcome(application_id: str, loan_id: str, defaulted: bool) -> OutcomeRow:
    return OutcomeRow(TENANT, application_id, loan_id, defaulted, BEFORE + timedelta(days=200))


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, EventEnvelope]] = []

    async def __call__(self, topic: str, envelope: EventEnvelope) -> None:
        self.events.append((topic, envelope))


async def _erase_by_event(store: RetrainerStore, member: MemberRef) -> MemberErasureCompleted:
    sent = Sent()
    message = erasure_requested(ErasureRequest("erasure-it-1", member, "jwt:dpo", ASKED))
    handler = RetrainerErasures(store, sent, "completed", "retrainer")
    await handler.handle(Event(wrap(message, producer="gateway"), message))
    [(topic, envelope)] = sent.events
    assert topic == "completed"
    return decode(encode(envelope), MemberErasureCompleted).payload


async def test_a_members_rows_are_exported_erased_and_not_stored_again_from_a_replay(
    store: RetrainerStore,
) -> None:
    member, kept = "M-erased", "M-kept"
    await store.add_applications(
        [
            _row("A1", member, BEFORE),
            _row("A2", kept, BEFORE),
            _row("A3", member, BEFORE, tenant=OTHER),  # another SACCO's member of the same id
        ]
    )
    await store.add_outcomes([_outcome("A1", "L1", True), _outcome("A2", "L2", False)])
    ref = MemberRef.of(TENANT, member, KEY)
    holder = RetrainerHolder(store)

    assert await holder.holds(ref)
    data = await holder.export(ref)
    assert json.loads(json.dumps(data)) == data, "JSON-ready"
    [application] = data["applications"]
    assert (application["application_id"], application["member_id"]) == ("A1", member)
    assert application["applied_at"] == BEFORE.isoformat()
    assert [(o["loan_id"], o["defaulted"]) for o in data["outcomes"]] == [("L1", True)]

    completion = await _erase_by_event(store, ref)
    assert (completion.store, completion.member_held) == ("retrainer", True)
    assert completion.records_erased == 2  # the application and its outcome
    assert not await store.holds_member(TENANT, member)
    assert await holder.export(ref) == {"applications": [], "outcomes": []}
    assert await store.holds_member(TENANT, kept)
    assert await store.holds_member(OTHER, member)  # the tenant's member only
    assert list((await store.labelled())["member_id"]) == [kept], "nothing of it is learnt"
    refs = [
        r["member_ref"] for r in await store.pool.fetch(f"SELECT * FROM {store.s}.erased_members")
    ]
    assert refs == [tenant_member_ref(KEY, TENANT, member)]  # the keyed pseudonym, no raw id

    # redelivered from the topics: the application from before the erasure stays out (its
    # outcome, with no member id, joins nothing a challenger learns from)
    await store.add_applications([_row("A1", member, BEFORE)])
    await store.add_outcomes([_outcome("A1", "L1", True)])
    assert not await store.holds_member(TENANT, member)
    assert list((await store.labelled())["member_id"]) == [kept]

    # the member applied again after the erasure: that one is theirs to keep
    await store.add_applications([_row("A4", member, ASKED + timedelta(days=1))])
    assert [a["application_id"] for a in (await holder.export(ref))["applications"]] == ["A4"]

    again = await _erase_by_event(store, ref)  # a redelivered request: nothing of before left
    assert (again.records_erased, again.member_held) == (0, True)


async def test_a_late_answer_keeps_what_the_member_sent_after_asking_and_the_cli_erases_all(
    store: RetrainerStore,
) -> None:
    """The retrainer runs on demand and may answer days after the request: the erasure covers
    what the member had sent by then, not what came later. The CLI's direct path erases
    everything there is, now."""
    member = "M-late"
    late = ASKED + timedelta(hours=2)  # sent after asking, stored before the retrainer answered
    await store.add_applications([_row("A1", member, BEFORE), _row("A5", member, late)])
    ref = MemberRef.of(TENANT, member, KEY)

    completion = await _erase_by_event(store, ref)
    assert completion.records_erased == 1
    data = await store.member_data(TENANT, member)
    assert [a["application_id"] for a in data["applications"]] == ["A5"]

    assert await RetrainerHolder(store).erase(ref) == 1  # the CLI: dated now, every row
    await store.add_applications([_row("A5", member, late)])  # redelivered: before "now"
    assert not await store.holds_member(TENANT, member)


# --- through the service, on the broker ---------------------------------------------------


@pytest.fixture
async def settings(infra: InfraSettings, tmp_path: Path) -> AsyncIterator[RetrainerSettings]:
    run = uuid.uuid4().hex[:10]
    names = ["applications", "outcomes", "drift", "performance"]
    names += ["erasures", "completed", "exports", "parts"]
    topics = {name: f"test.retrainer_md.{name}.{run}" for name in names}
    await ensure_topics(infra, [TopicSpec(topic, 1, 1) for topic in topics.values()])
    settings = RetrainerSettings(
        infra=infra,
        db_schema=f"retrainer_mds_{run}",
        consumer_group=f"retrainer-md-{run}",
        applications_topic=topics["applications"],
        outcomes_topic=topics["outcomes"],
        drift_alerts_topic=topics["drift"],
        performance_alerts_topic=topics["performance"],
        erasures_topic=topics["erasures"],
        erasures_completed_topic=topics["completed"],
        exports_topic=topics["exports"],
        export_parts_topic=topics["parts"],
        schedule_every_hours=0,
        min_new_outcomes=1000,  # never trains here
        check_every_seconds=0.2,
        work_dir=str(tmp_path / "runs"),
        metrics_port=0,
    )
    try:
        yield settings
    finally:
        pool = await create_pool(infra, max_size=1)
        await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
        await pool.close()


def _application(application_id: str, member: str, at: datetime) -> LoanApplicationSubmitted:
    a = LoanApplicationSubmitted(
        application_id=application_id,
        member_id=member,
        product=LoanProduct.LOAN_PRODUCT_EMERGENCY,
        amount_kes=12_000,
        term_months=6,
        tenant_id=TENANT,
    )
    a.applied_at.FromDatetime(at)
    return a


async def _applications(infra: InfraSettings, topic: str, *rows: LoanApplicationSubmitted) -> None:
    await publish_envelopes(
        infra, topic, [wrap(a, producer="core", subject=a.application_id) for a in rows]
    )


async def _until_held(store: RetrainerStore, member: str) -> None:
    async with asyncio.timeout(30):
        while not await store.holds_member(TENANT, member):  # noqa: ASYNC110 - polled state
            await asyncio.sleep(0.2)


async def test_the_service_answers_an_export_and_an_erasure_on_the_broker(
    infra: InfraSettings, settings: RetrainerSettings
) -> None:
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop))
    store = await open_store(settings)
    key = settings.member_pseudonym_key.get_secret_value().encode()
    member = MemberRef.of(TENANT, "M-broker", key)
    applied = datetime.now(UTC) - timedelta(days=3)  # before the request, made now
    try:
        await _applications(
            infra, settings.applications_topic, _application("B1", "M-broker", applied)
        )
        await _until_held(store, "M-broker")

        export = ExportRequest.new(member, "jwt:dpo")
        await publish_envelopes(
            infra, settings.exports_topic, [export_request_envelope(export, "gateway")]
        )
        [record] = await read_topic(infra, settings.export_parts_topic, 1)
        part = decode(record.value, MemberExportPart).payload
        assert (part.request_id, part.store, part.member_held) == (
            export.request_id,
            "retrainer",
            True,
        )
        assert [a["application_id"] for a in json.loads(part.data_json)["applications"]] == ["B1"]

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
        assert (completion.request_id, completion.store) == (request.request_id, "retrainer")
        assert (completion.records_erased, completion.member_held) == (1, True)
        assert b"M-broker" not in record.value  # the member appears by pseudonym only
        assert not await store.holds_member(TENANT, "M-broker")

        # a replay of the member's application, then another member's: once the second is
        # kept the first has been through the consumer, and is not stored again
        await _applications(
            infra,
            settings.applications_topic,
            _application("B1", "M-broker", applied),
            _application("B2", "M-next", applied),
        )
        await _until_held(store, "M-next")
        assert not await store.holds_member(TENANT, "M-broker")
    finally:
        stop.set()
        await service
        await store.pool.close()
