"""The retrainer's part of members' rights (services/retrainer/member_data.py): its erasure
answer (dated at the request, the same event on a redelivery, no raw member id), its export
part, the status that stays pending until the on-demand retrainer has answered, and the live
rows that never outlive a run."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.common.envelope import Event, decode, encode, wrap
from services.common.member_exports import (
    ExportAnswer,
    ExportRequest,
    export_part,
    export_report,
    export_requested,
    part_status,
)
from services.common.member_rights import (
    ERASURE_STORES,
    ErasureRequest,
    InvalidMember,
    MemberRef,
    completion_event_id,
    erasure_completed,
    erasure_requested,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberErasureRequested,
    MemberExportPart,
)
from services.gateway.erasure_status import completion_status, erasure_report
from services.retrainer.consumer import build_consumer
from services.retrainer.member_data import STORE, RetrainerErasures, RetrainerHolder
from services.retrainer.policy import Due
from services.retrainer.runner import Runner
from services.retrainer.settings import RetrainerSettings

KEY = b"unit-member-pseudonym-key-32-bytes!"
TENANT = "sacco-a"
MEMBER = "M-7781"
ASKED = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)


@dataclass
class FakeStore:
    """The store's members' rights methods over a dict of (tenant, member) -> rows."""

    rows: dict[tuple[str, str], int] = field(default_factory=lambda: {(TENANT, MEMBER): 3})
    erasures: list[tuple[str, str, datetime | None]] = field(default_factory=list)

    async def holds_member(self, tenant: str, member_id: str) -> bool:
        return self.rows.get((tenant, member_id), 0) > 0

    async def member_data(self, tenant: str, member_id: str) -> dict[str, Any]:
        n = self.rows.get((tenant, member_id), 0)
        return {"applications": [{"application_id": f"A{i}"} for i in range(n)], "outcomes": []}

    async def erase_member(
        self, tenant: str, member_id: str, erased_at: datetime | None = None
    ) -> int:
        self.erasures.append((tenant, member_id, erased_at))
        return self.rows.pop((tenant, member_id), 0)


@dataclass
class Sent:
    events: list[tuple[str, EventEnvelope]] = field(default_factory=list)

    async def __call__(self, topic: str, envelope: EventEnvelope) -> None:
        self.events.append((topic, envelope))


def _request(member_id: str = MEMBER, tenant: str = TENANT) -> MemberErasureRequested:
    member = MemberRef(tenant, member_id, "mbr_pseudonym")  # as carried, unchecked here
    return erasure_requested(ErasureRequest("erasure-1", member, "jwt:dpo", ASKED))


def _event(message: MemberErasureRequested) -> Event[Any]:
    return Event(wrap(message, producer="gateway", subject=message.request_id), message)


def _completion(envelope: EventEnvelope) -> MemberErasureCompleted:
    return decode(encode(envelope), MemberErasureCompleted).payload


async def test_an_erasure_is_answered_with_the_stores_completion_dated_at_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store, send = FakeStore(), Sent()
    handler = RetrainerErasures(store, send, "completed", "retrainer")  # type: ignore[arg-type]

    await handler.handle(_event(_request()))

    # the late retrainer keeps what the member sent after asking: the erasure is the request's
    assert store.erasures == [(TENANT, MEMBER, ASKED)]
    [(topic, envelope)] = send.events
    completion = _completion(envelope)
    assert topic == "completed" and STORE == "retrainer"
    assert (completion.request_id, completion.tenant_id, completion.store) == (
        "erasure-1",
        TENANT,
        "retrainer",
    )
    assert (completion.records_erased, completion.member_held) == (3, True)
    assert completion.member_ref == "mbr_pseudonym"
    assert envelope.event_id == completion_event_id("erasure-1", "retrainer")
    assert envelope.subject == "erasure-1" and envelope.producer == "retrainer"
    assert MEMBER.encode() not in encode(envelope)  # the completion names the pseudonym only
    logged = [r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records]
    assert logged and not [line for line in logged if MEMBER in line]


async def test_a_redelivered_request_publishes_the_same_event_with_nothing_left() -> None:
    store, send = FakeStore(), Sent()
    handler = RetrainerErasures(store, send, "completed", "retrainer")  # type: ignore[arg-type]
    await handler.handle(_event(_request()))
    await handler.handle(_event(_request()))

    first, again = (envelope for _topic, envelope in send.events)
    assert first.event_id == again.event_id  # the status and the audit keep the first
    assert (_completion(again).records_erased, _completion(again).member_held) == (0, False)


async def test_a_request_without_a_time_erases_everything_now() -> None:
    store, send = FakeStore(), Sent()
    message = _request()
    message.ClearField("requested_at")
    handler = RetrainerErasures(store, send, "completed", "retrainer")  # type: ignore[arg-type]
    await handler.handle(_event(message))
    assert store.erasures == [(TENANT, MEMBER, None)]  # None: every row, dated now


@pytest.mark.parametrize(("member_id", "tenant"), [("../M", TENANT), (MEMBER, "Not A Tenant")])
async def test_an_invalid_member_is_refused_before_anything_is_erased_or_sent(
    member_id: str, tenant: str
) -> None:
    store, send = FakeStore(), Sent()
    handler = RetrainerErasures(store, send, "completed", "retrainer")  # type: ignore[arg-type]
    with pytest.raises(InvalidMember):  # the consumer dead-letters it with its reason
        await handler.handle(_event(_request(member_id, tenant)))
    assert store.erasures == [] and send.events == []


async def test_an_export_part_holds_the_members_rows_in_the_tenant_only() -> None:
    store, send = FakeStore(), Sent()
    answer = ExportAnswer([RetrainerHolder(store)], send, "parts", "retrainer")  # type: ignore[arg-type]
    for tenant in (TENANT, "sacco-b"):
        message = export_requested(ExportRequest.new(MemberRef.of(tenant, MEMBER, KEY), "dpo"))
        await answer.handle(Event(wrap(message, producer="gateway"), message))

    ours, other = (decode(encode(e), MemberExportPart).payload for _t, e in send.events)
    assert (ours.store, ours.member_held) == ("retrainer", True)
    assert [a["application_id"] for a in json.loads(ours.data_json)["applications"]] == [
        "A0",
        "A1",
        "A2",
    ]
    assert (other.member_held, json.loads(other.data_json)) == (False, [])


def test_a_request_stays_pending_until_the_on_demand_retrainer_has_answered() -> None:
    assert "retrainer" in ERASURE_STORES
    request = ErasureRequest("erasure-1", MemberRef.of(TENANT, MEMBER, KEY), "dpo", ASKED)
    found = {
        f"store:{store}": completion_status(erasure_completed(request, store, 1))
        for store in ERASURE_STORES
        if store != "retrainer"
    }
    report = erasure_report("erasure-1", found)
    assert report["status"] == "pending"
    assert report["stores"]["retrainer"] == {"status": "pending"}

    found["store:retrainer"] = completion_status(erasure_completed(request, "retrainer", 0))
    assert erasure_report("erasure-1", found)["status"] == "completed"

    export = ExportRequest.new(request.member, "dpo")
    parts = {
        f"store:{store}": part_status(export_part(export, store, [], member_held=True))
        for store in ERASURE_STORES
        if store != "retrainer"
    }
    assert export_report(export.request_id, parts)["status"] == "pending"


async def test_the_consumer_takes_members_requests_only_with_a_way_to_answer() -> None:
    settings = RetrainerSettings(dev_mode=True)
    store = FakeStore()
    answering = build_consumer(settings, store, Sent())  # type: ignore[arg-type]
    quiet = build_consumer(settings, store)  # type: ignore[arg-type]
    for consumer in (answering, quiet):
        await consumer.close()  # never started: nothing left open
    rights = {settings.erasures_topic, settings.exports_topic}
    assert rights <= set(answering.routes) and not rights & set(quiet.routes)


@dataclass
class RunsStore:
    """Just what a run needs of the store: the labelled rows, and where it records the run."""

    finished: list[str] = field(default_factory=list)

    async def labelled(self) -> pd.DataFrame:
        return pd.DataFrame({"application_id": ["A0"], "member_id": [MEMBER]})

    async def start_run(self, *_args: Any) -> None:
        return None

    async def finish_run(self, _run_id: str, status: str, *_args: Any, **_kw: Any) -> None:
        self.finished.append(status)

    async def abandon_running(self, _at: datetime) -> int:
        return 0

    async def watching_since(self, now: datetime) -> datetime:
        return now

    async def runs(self, limit: int = 20) -> list[Any]:
        return []


def _runs_files(work_dir: Path, name: str) -> list[Path]:
    return list(work_dir.glob(f"*/{name}"))


async def test_the_live_rows_never_outlive_their_run(tmp_path: Path) -> None:
    """The parquet file handed to the job holds members' ids, out of erasure's reach: gone once
    the job is done, and one a stopped retrainer left is gone at the next start."""
    # one thread: exiting right after a threaded parquet read sometimes aborts in pyarrow's
    # teardown (exit 134, not 3)
    job = (
        "import pandas, sys; a = sys.argv;"
        " pandas.read_parquet(a[a.index('--live-rows') + 1], use_threads=False)"
    )
    settings = RetrainerSettings(
        dev_mode=True,
        work_dir=str(tmp_path),
        training_command=[sys.executable, "-c", f"{job}; sys.exit(3)"],
    )
    left = tmp_path / "20261128-drift-abc123" / "live.parquet"
    left.parent.mkdir()
    left.write_bytes(b"a stopped run's rows")
    store = RunsStore()
    runner = Runner(store, settings)  # type: ignore[arg-type]
    await runner.restore()
    assert not left.exists()

    assert await runner.run(Due("manual", "asked by hand", ())) == "refused"
    assert store.finished == ["refused"]  # the job read the file (a missing one is exit 1)
    assert _runs_files(tmp_path, "live.parquet") == []
    assert _runs_files(tmp_path, "job.log"), "the run's other files stay"
