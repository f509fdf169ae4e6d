"""Members' rights as a deployment serves them: the admin API publishes an erasure or export
request (202) and reports what each store answered, per tenant, through the status routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from services.common.envelope import decode, encode, wrap
from services.common.member_exports import (
    ExportAnswer,
    ExportRequest,
    export_part,
    export_request_of,
    export_requested,
    part_status,
)
from services.common.member_rights import (
    ERASURE_STORES,
    MemberRef,
    erasure_completed,
    erasure_request_of,
    member_pseudonym,
)
from services.common.members import member_key
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureRequested,
    MemberExportPart,
    MemberExportRequested,
)
from services.gateway.app import create_app
from services.gateway.clients import Backends
from services.gateway.security import issue_token
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.fakes import (
    FakeErasureStatuses,
    FakeEvents,
    FakeExplanations,
    FakeReplayStore,
    FakeRevocations,
    FakeScoring,
)

KEY = b"unit-member-pseudonym-key-32-bytes!"
STORES = ERASURE_STORES  # decisions, audit, feast, faust_tables, console, retrainer


@dataclass
class Admin:
    client: httpx.AsyncClient
    settings: GatewaySettings
    events: FakeEvents
    erasures: FakeErasureStatuses
    exports: FakeErasureStatuses

    def headers(self, tenant: str) -> dict[str, str]:
        token = issue_token(self.settings, "dpo", ["admin"], tenant=tenant)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(settings: GatewaySettings) -> AsyncIterator[Admin]:
    events, erasures, exports = FakeEvents(), FakeErasureStatuses(), FakeErasureStatuses()
    backends = Backends(
        scoring=FakeScoring(),
        explanations=FakeExplanations(),
        events=events,
        replay=FakeReplayStore(),
        revocations=FakeRevocations(),
        erasures=erasures,
        exports=exports,
        members_key=KEY,
    )
    app = create_app(settings, backends=backends)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        yield Admin(client, settings, events, erasures, exports)


async def test_an_export_is_requested_then_assembled_from_every_stores_part(
    admin: Admin,
) -> None:
    a = admin.headers("sacco-a")
    accepted = await admin.client.post(
        "/v1/admin/members/exports", json={"member_id": "M-1"}, headers=a
    )
    assert accepted.status_code == 202, accepted.text
    request_id, url = accepted.json()["request_id"], accepted.json()["status_url"]
    [published] = admin.events.published
    assert published.topic == admin.settings.exports_topic
    # keyed by the tenant's member: the partition of the feature store's tables for it
    assert published.envelope.subject == member_key("sacco-a", "M-1")
    request = export_request_of(decode(encode(published.envelope), MemberExportRequested).payload)
    assert (request.request_id, request.member.tenant) == (request_id, "sacco-a")
    assert request.member.pseudonym == member_pseudonym(KEY, "M-1")

    pending = (await admin.client.get(url, headers=a)).json()
    assert pending["status"] == "pending"
    assert {s["status"] for s in pending["stores"].values()} == {"pending"}
    # each store answers (here straight into the status store, as the consumer does)
    for store in STORES:
        part = export_part(request, store, {"store": store, "rows": [1, 2]}, member_held=True)
        await admin.exports.completed("sacco-a", request_id, store, part_status(part))
    done = (await admin.client.get(url, headers=a)).json()
    assert done["status"] == "completed"
    assert done["stores"]["feast"]["data"] == {"store": "feast", "rows": [1, 2]}
    assert done["member_ref"] == member_pseudonym(KEY, "M-1")
    # another tenant learns nothing, not even that the request exists
    other = await admin.client.get(url, headers=admin.headers("sacco-b"))
    assert other.status_code == 404
    bad = await admin.client.post(
        "/v1/admin/members/exports", json={"member_id": "../M"}, headers=a
    )
    assert bad.status_code == 422


async def test_a_member_the_tenant_does_not_hold_is_not_found_without_any_data(
    admin: Admin,
) -> None:
    a = admin.headers("sacco-a")
    accepted = await admin.client.post(
        "/v1/admin/members/exports", json={"member_id": "M-2"}, headers=a
    )
    request_id = accepted.json()["request_id"]
    request = export_request_of(
        decode(encode(admin.events.published[0].envelope), MemberExportRequested).payload
    )
    for store in STORES:
        scoped = store in ("decisions", "audit")
        data = [] if scoped else {"leftover": True}
        part = export_part(request, store, data, member_held=not scoped)
        await admin.exports.completed("sacco-a", request_id, store, part_status(part))
    report = (await admin.client.get(accepted.json()["status_url"], headers=a)).json()
    assert report["status"] == "not_found"
    assert "leftover" not in json.dumps(report)


async def test_an_erasure_is_requested_and_reported_per_store(admin: Admin) -> None:
    a = admin.headers("sacco-a")
    accepted = await admin.client.post(
        "/v1/admin/members/erasures", json={"member_id": "M-3"}, headers=a
    )
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    [published] = admin.events.published
    assert published.topic == admin.settings.erasures_topic
    assert published.envelope.subject == body["request_id"]  # no raw id in the key
    request = erasure_request_of(decode(encode(published.envelope), MemberErasureRequested).payload)
    for store in STORES[:2]:
        done = erasure_completed(request, store, 2, member_held=True)
        await admin.erasures.completed("sacco-a", request.request_id, store, _status(done))
    halfway = (await admin.client.get(body["status_url"], headers=a)).json()
    assert halfway["status"] == "pending"
    for store in STORES[2:]:
        done = erasure_completed(request, store, 1, member_held=True)
        await admin.erasures.completed("sacco-a", request.request_id, store, _status(done))
    report = (await admin.client.get(body["status_url"], headers=a)).json()
    assert report["status"] == "completed"
    assert report["stores"]["decisions"]["records_erased"] == 2
    hidden = await admin.client.get(body["status_url"], headers=admin.headers("sacco-b"))
    assert hidden.status_code == 404


def _status(completion: object) -> str:
    from services.gateway.erasure_status import completion_status

    return completion_status(completion)  # type: ignore[arg-type]


class _Holder:
    def __init__(self, name: str, scoped: bool, held: bool, data: object) -> None:
        self.name, self.tenant_scoped, self.held, self.data = name, scoped, held, data
        self.asked: list[MemberRef] = []

    async def holds(self, member: MemberRef) -> bool:
        return self.held

    async def export(self, member: MemberRef) -> object:
        self.asked.append(member)
        return self.data

    async def erase(self, member: MemberRef) -> int:
        raise AssertionError("an export never erases")


async def test_a_service_answers_with_one_part_per_store_it_holds() -> None:
    sent: list[tuple[str, EventEnvelope]] = []

    async def send(topic: str, envelope: EventEnvelope) -> None:
        sent.append((topic, envelope))

    decisions = _Holder("decisions", scoped=True, held=False, data=[{"secret": 1}])
    tables = _Holder("faust_tables", scoped=False, held=False, data={"t": {"rows": []}})
    answer = ExportAnswer([decisions, tables], send, "parts", "explanation")  # type: ignore[list-item]
    member = MemberRef.of("sacco-a", "M-9", KEY)
    request = ExportRequest.new(member, requested_by="jwt:dpo")
    envelope = wrap(export_requested(request), producer="gateway")
    await answer.handle(decode(encode(envelope), MemberExportRequested))
    parts = [decode(encode(e), MemberExportPart).payload for _, e in sent]
    assert [(t, p.store) for (t, _), p in zip(sent, parts, strict=True)] == [
        ("parts", "decisions"),
        ("parts", "faust_tables"),
    ]
    # a tenant-scoped store that does not hold the member exports nothing of it
    assert not parts[0].member_held and json.loads(parts[0].data_json) == []
    assert decisions.asked == []
    assert parts[1].member_held and json.loads(parts[1].data_json) == {"t": {"rows": []}}
    assert [e.event_id for _, e in sent] == [
        f"{request.request_id}/decisions",
        f"{request.request_id}/faust_tables",
    ]
