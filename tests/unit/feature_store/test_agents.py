"""The Faust agents in `agent.test_context()` with the in-memory store: batches of envelopes
become member state and one Feast push per source; bad records are dead-lettered with their
reason and the agent goes on; duplicates change nothing; failed pushes are retried."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from faust.types import TP
from prometheus_client import REGISTRY

from services.common import features as F
from services.common.envelope import decode, encode, wrap
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter, EventEnvelope
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    MobileMoneyTransaction,
    TransactionKind,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.feature_store.activity import WalletHistory
from services.feature_store.agents import FeatureStoreService, create_feature_store_app
from services.feature_store.feature_rows import as_of_series
from services.feature_store.settings import FeatureStoreSettings
from tests.unit.feature_store.conftest import WorldEvents
from tests.unit.feature_store.test_feature_rows import assert_rows_equal


class RecordingPusher:
    """Stands in for Feast: keeps every pushed frame, fails the first `failures` pushes."""

    def __init__(self, failures: int = 0) -> None:
        self.pushes: list[tuple[str, pd.DataFrame]] = []
        self.failures = failures

    async def push(self, push_source: str, rows: pd.DataFrame) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("feast is away")
        self.pushes.append((push_source, rows.copy()))

    def close(self) -> None:
        pass

    def latest(self, push_source: str) -> pd.DataFrame:
        """Each member's most recent pushed row for a source."""
        frames = [rows for source, rows in self.pushes if source == push_source]
        return pd.concat(frames).groupby("member_id", sort=False).tail(1)


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, EventEnvelope, list[tuple[str, bytes]]]] = []

    async def __call__(self, topic: str, envelope: EventEnvelope, headers: list) -> None:  # type: ignore[type-arg]
        self.sent.append((topic, envelope, headers))

    def reasons(self, topic: str) -> list[str]:
        return [decode(encode(e), DeadLetter).payload.reason for t, e, _ in self.sent if t == topic]


def _service(pusher: RecordingPusher, letters: Letters) -> FeatureStoreService:
    suffix = uuid.uuid4().hex[:8]
    settings = FeatureStoreSettings(
        consumer_group=f"feature-store-unit-{suffix}",
        mobile_money_topic=f"unit.mm.{suffix}",
        repayments_topic=f"unit.rp.{suffix}",
        max_batch=1000,
        batch_max_wait_ms=20,
        metrics_port=0,
    )
    service = create_feature_store_app(settings, pusher=pusher, publisher=letters)
    # state tables pick changelog partitions with the producer's key partitioner, which
    # needs broker metadata; without a broker every member's state goes to partition 0
    producer = service.app.producer
    producer.key_partition = lambda topic, key: TP(topic, 0)  # type: ignore[method-assign]
    return service


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the agent's state has no event to await
            await asyncio.sleep(0.01)


def _consumed(topic: str, outcome: str) -> float:
    labels = {"service": "feature_store", "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("alama_events_consumed_total", labels) or 0.0


def _bad_transactions() -> list[tuple[bytes, str]]:
    def txn(**fields: object) -> bytes:
        base: dict[str, object] = {
            "transaction_id": f"bad-{uuid.uuid4().hex[:6]}",
            "tenant_id": "sacco-a",
            "member_id": "M-bad",
            "kind": TransactionKind.TRANSACTION_KIND_INFLOW,
            "amount_kes": 10.0,
        }
        payload = MobileMoneyTransaction(**(base | fields))  # type: ignore[arg-type]
        return encode(wrap(payload, producer="test"))

    wrong_type = encode(wrap(RepaymentRecorded(repayment_id="r", member_id="M"), producer="t"))
    return [
        (b"\x00not an envelope", "undecodable_envelope"),
        (wrong_type, "unexpected_payload_type"),
        (txn(member_id=""), "missing_member_id"),
        (txn(tenant_id=""), "missing_tenant_id"),
        (txn(amount_kes=-250.0), "negative_amount"),
    ]


async def test_mobile_money_batches_push_training_equal_features_and_dead_letter_bad_records(
    world_events_small: WorldEvents,
) -> None:
    data = world_events_small
    members = data.members(3)
    envelopes = data.of(data.mobile_money, members)
    pusher, letters = RecordingPusher(), Letters()
    service = _service(pusher, letters)
    topic = service.settings.mobile_money_topic
    bad = _bad_transactions()
    # the latest five: an older redelivery can meet its row already pruned from the history
    # (counted stale, not duplicate) when batches split differently on a busy machine
    duplicates = envelopes[-5:]
    sent = [*envelopes[: len(envelopes) // 2], *(v for v, _ in bad)]
    sent += [*envelopes[len(envelopes) // 2 :], *(encode(e) for e in duplicates)]
    sent = [encode(v) if isinstance(v, EventEnvelope) else v for v in sent]

    async with service.agents["mobile_money"].test_context() as agent:
        for value in sent:
            await agent.put(value, wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(sent))

    assert letters.reasons(f"{topic}.dlq") == [reason for _, reason in bad]
    assert all(
        h == [("alama-dead-letter-reason", r.encode())]
        for (*_, h), r in zip(letters.sent, (r for _, r in bad), strict=True)
    )
    assert _consumed(topic, "duplicate") == len(duplicates)
    assert _consumed(topic, "dead_lettered") == len(bad)
    assert _consumed(topic, "processed") == len(envelopes)

    # the last pushed row of each member is training's computation on the world's rows
    latest = pusher.latest("mobile_money_push")
    state = {
        m: WalletHistory.from_json(service.mobile_money.table[member_key(DEV_TENANT, m)])
        for m in members
    }
    assert not any(h.pending for h in state.values())
    as_of = as_of_series({m: h.pushed_as_of_ns for m, h in state.items()})
    expected = F.mobile_money_features(data.table("mobile_money", members), as_of)
    keys = [member_key(DEV_TENANT, m) for m in members]
    assert_rows_equal(latest.set_index("member_id").loc[keys].reset_index(), expected, as_of)


def _outcomes(reports: object) -> list[int]:
    return [n for report in reports for n in report.outcomes.values()]  # type: ignore[attr-defined]


async def test_a_failed_push_leaves_members_pending_until_the_retry(
    world_events_small: WorldEvents,
) -> None:
    data = world_events_small
    members = [member_key(DEV_TENANT, m) for m in data.members(2)]  # the tables' keys
    envelopes = data.of(data.repayments, data.members(2))
    pusher, letters = RecordingPusher(failures=1), Letters()
    service = _service(pusher, letters)

    async with service.agents["repayments"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        assert not pusher.pushes
        assert all(service.repayments.table[m]["pending"] for m in members)

        assert sorted(await service.push_pending()) == sorted(members)

    assert [source for source, _ in pusher.pushes] == ["repayment_push"]
    assert sorted(pusher.pushes[0][1]["member_id"]) == sorted(members)
    assert not any(service.repayments.table[m]["pending"] for m in members)
    assert await service.push_pending() == []


async def test_the_retry_finds_pending_members_that_a_recovery_wrote(
    world_events_small: WorldEvents,
) -> None:
    """The retry timer keeps the flagged members as states are saved; states a changelog
    recovery wrote (straight into the table) are found once the rebalance is over."""
    data = world_events_small
    members = [member_key(DEV_TENANT, m) for m in data.members(2)]
    envelopes = data.of(data.repayments, data.members(2))
    pusher = RecordingPusher(failures=1)
    service = _service(pusher, Letters())

    async with service.agents["repayments"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        states = {m: dict(service.repayments.table[m]) for m in members}
        assert sorted(await service.push_pending()) == sorted(members)
        assert await service.push_pending() == []

        # a rebalance recovers the states as they were (pending) from the changelog
        app: Any = service.app
        app.rebalancing = True
        for member, state in states.items():
            service.repayments.table[member] = state
        assert await service.push_pending() == []  # skipped while the tables recover
        app.rebalancing = False
        app.rebalancing_count += 1
        assert sorted(await service.push_pending()) == sorted(members)
        assert await service.push_pending() == []


@pytest.mark.parametrize("agent_name", ["mobile_money", "repayments"])
async def test_redelivered_events_push_nothing(
    world_events_small: WorldEvents, agent_name: str
) -> None:
    data = world_events_small
    members = data.members(1)
    source = data.mobile_money if agent_name == "mobile_money" else data.repayments
    envelopes = data.of(source, members)[:20]
    pusher = RecordingPusher()
    service = _service(pusher, Letters())

    async with service.agents[agent_name].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        pushed = len(pusher.pushes)
        state = dict(service.streams[0 if agent_name == "mobile_money" else 1].table)
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == 2 * len(envelopes))

    assert pushed >= 1 and len(pusher.pushes) == pushed
    assert dict(service.streams[0 if agent_name == "mobile_money" else 1].table) == state
