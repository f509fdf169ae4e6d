"""The shared erasure answer each store's service uses (services/common/member_rights.py): a
dated store erases what the member had sent by the request, an undated one everything now; the
completion names the store and the pseudonym only; a store must be named."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.envelope import Event, decode, encode, wrap
from services.common.member_rights import (
    ERASURE_STORES,
    ErasureRequest,
    MemberRef,
    StoreErasures,
    StoreHolder,
    completion_event_id,
    erasure_requested,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import MemberErasureCompleted
from services.console.member_data import ConsoleErasures
from services.outcomes.member_data import OutcomesErasures
from services.retrainer.member_data import RetrainerErasures

TENANT, MEMBER = "sacco-a", "M-5512"
ASKED = datetime(2026, 12, 1, 8, tzinfo=UTC)


@dataclass
class Store:
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def holds_member(self, tenant: str, member_id: str) -> bool:
        return not self.calls

    async def erase_member(self, tenant: str, member_id: str, **dated: Any) -> int:
        self.calls.append({"tenant": tenant, "member_id": member_id, **dated})
        return 4 if len(self.calls) == 1 else 0


@dataclass
class Sent:
    events: list[tuple[str, EventEnvelope]] = field(default_factory=list)

    async def __call__(self, topic: str, envelope: EventEnvelope) -> None:
        self.events.append((topic, envelope))


def _event() -> Event[Any]:
    member = MemberRef(TENANT, MEMBER, "mbr_pseudonym")
    message = erasure_requested(ErasureRequest("erasure-9", member, "jwt:dpo", ASKED))
    return Event(wrap(message, producer="gateway"), message)


@pytest.mark.parametrize(
    ("answer", "store", "dated"),
    [
        (OutcomesErasures, "outcomes", True),
        (RetrainerErasures, "retrainer", True),
        (ConsoleErasures, "console", False),
    ],
)
async def test_each_store_answers_under_its_own_name_dated_as_it_declares(
    answer: type[StoreErasures], store: str, dated: bool
) -> None:
    assert store in ERASURE_STORES, "the gateway's status waits for it"
    held, sent = Store(), Sent()
    handler = answer(held, sent, "completed", "svc")  # type: ignore[arg-type]
    await handler.handle(_event())
    await handler.handle(_event())  # redelivered

    expected = {"tenant": TENANT, "member_id": MEMBER} | ({"erased_at": ASKED} if dated else {})
    assert held.calls == [expected, expected]
    first, again = (decode(encode(e), MemberErasureCompleted).payload for _t, e in sent.events)
    assert (first.store, first.records_erased, first.member_held) == (store, 4, True)
    assert (again.records_erased, again.member_held) == (0, False)
    assert sent.events[0][1].event_id == sent.events[1][1].event_id
    assert sent.events[0][1].event_id == completion_event_id("erasure-9", store)
    assert first.member_ref == "mbr_pseudonym" and MEMBER.encode() not in encode(sent.events[0][1])


def test_an_answer_and_a_holder_must_name_their_store() -> None:
    with pytest.raises(TypeError, match="store_name"):
        StoreErasures(Store(), Sent(), "completed", "svc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        StoreHolder(Store())  # type: ignore[arg-type]
