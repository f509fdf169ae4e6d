"""A vouched erasure request in the running worker: the member leaves the in-memory tables and
the pending retries, Feast is asked, each store answers, and redelivered events stay out."""

from __future__ import annotations

import uuid

from faust.types import TP

from services.common.envelope import decode, encode, wrap
from services.common.member_rights import ErasureRequest, MemberRef, erasure_requested
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.members_pb2 import MemberErasureCompleted
from services.feature_store.agents import FeatureStoreService, create_feature_store_app
from services.feature_store.settings import FeatureStoreSettings
from tests.unit.feature_store.conftest import WorldEvents
from tests.unit.feature_store.test_agents import Letters, RecordingPusher, _outcomes, _until


def _service(pusher: RecordingPusher, letters: Letters, feast: list[str]) -> FeatureStoreService:
    suffix = uuid.uuid4().hex[:8]
    settings = FeatureStoreSettings(
        consumer_group=f"feature-store-unit-{suffix}",
        mobile_money_topic=f"unit.mm.{suffix}",
        repayments_topic=f"unit.rp.{suffix}",
        erasures_topic=f"unit.er.{suffix}",
        erasures_completed_topic=f"unit.done.{suffix}",
        max_batch=1000,
        batch_max_wait_ms=20,
        metrics_port=0,
    )

    async def erase_feast(member: MemberRef) -> int:
        feast.append(member.key)
        return 3

    service = create_feature_store_app(
        settings, pusher=pusher, publisher=letters, feast_eraser=erase_feast
    )
    service.app.producer.key_partition = lambda topic, key: TP(topic, 0)  # type: ignore[method-assign]
    return service


async def test_an_erased_member_leaves_the_tables_and_retries_and_is_not_recreated(
    world_events_small: WorldEvents,
) -> None:
    data = world_events_small
    raw, raw_other = data.members(2)
    envelopes = data.of(data.repayments, [raw, raw_other])
    pusher, letters, feast = RecordingPusher(failures=1), Letters(), []  # type: ignore[var-annotated]
    service = _service(pusher, letters, feast)
    ref = MemberRef.of(DEV_TENANT, raw, b"k")
    member, other = ref.key, member_key(DEV_TENANT, raw_other)  # the tables' keys
    request = ErasureRequest.new(ref, requested_by="test")
    # another SACCO's member with the same id: its erasure leaves this tenant's member alone
    elsewhere = ErasureRequest.new(MemberRef.of("sacco-b", raw, b"k"), requested_by="test")

    async with service.agents["repayments"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        assert service.repayments.table[member]["pending"]  # the push failed: a retry waits

        async with service.agents["erasures"].test_context() as erasures:
            foreign = wrap(erasure_requested(elsewhere), producer="audit", subject=raw)
            await erasures.put(encode(foreign))
            await _until(lambda: len(letters.sent) == 2)
            assert service.repayments.table[member]["pending"]  # sacco-b's M is not this one
            assert feast == [member_key("sacco-b", raw)]
            letters.sent.clear()
            feast.clear()

            vouched = wrap(erasure_requested(request), producer="audit", subject=member)
            await erasures.put(encode(vouched))
            await _until(lambda: len(letters.sent) == 2)

        assert service.repayments.table.get(member) is None
        assert service.mobile_money.table.get(member) is None
        assert feast == [member]
        assert await service.push_pending() == [other]  # the erased member is not pushed back

        # the member's events redelivered: skipped, the history does not start again
        mine = data.of(data.repayments, [raw])
        for envelope in mine:
            await agent.put(encode(envelope), wait=False)
        total = len(envelopes) + len(mine)
        await _until(lambda: sum(_outcomes(agent.results.values())) == total)
        assert service.repayments.table.get(member) is None
        assert any(r.outcomes.get("erased") for r in agent.results.values())  # type: ignore[attr-defined]

    completions = [decode(encode(e), MemberErasureCompleted).payload for _, e, _ in letters.sent]
    assert {(c.store, c.records_erased) for c in completions} == {("faust_tables", 1), ("feast", 3)}
    assert {c.request_id for c in completions} == {request.request_id}
    assert all(raw not in str(c) for c in completions)  # pseudonym only
