"""Offline writes in the worker (agent.test_context(), in-memory tables): every row pushed online
is handed to the offline writer; a failed write leaves the rows owed in the member's state, the
batches stop trying while it fails, the retry timer writes them, and an erasure drops them. The
rows survive the member state's JSON, and their columns and types are training's layout."""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pandas as pd
import pytest
from faust.serializers import codecs
from faust.types import TP
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from prometheus_client import REGISTRY

from services.common.envelope import encode, wrap
from services.common.member_rights import ErasureRequest, MemberRef, erasure_requested
from services.common.members import DEV_TENANT, member_key
from services.feature_store.activity import RepaymentHistory, WalletHistory
from services.feature_store.agents import FeatureStoreService, create_feature_store_app
from services.feature_store.events import recorded_repayment, wallet_transaction
from services.feature_store.feature_rows import (
    mobile_money_rows,
    owed_frame,
    owed_rows,
    repayment_rows,
)
from services.feature_store.offline import (
    OfflinePushUnsupported,
    OfflineTable,
    batch_table,
    column_types,
    records,
)
from services.feature_store.settings import FeatureStoreSettings
from tests.unit.feature_store.conftest import WorldEvents, repayment_event, transaction_event
from tests.unit.feature_store.test_agents import Letters, RecordingPusher, _outcomes, _until
from training.feature_tables import _pg_type, chunk_tables
from training.sources.synthetic import loan_book_from_world


class RecordingOffline:
    """Stands in for the PostgreSQL offline writer: keeps each written frame; while `down`,
    every write fails."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.writes: list[tuple[str, pd.DataFrame]] = []
        self.attempts = 0

    async def write(self, push_source: str, rows: pd.DataFrame) -> int:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError("postgres is away")
        self.writes.append((push_source, rows.copy()))
        return len(rows)

    async def close(self) -> None:
        pass

    def rows(self, push_source: str) -> pd.DataFrame:
        return pd.concat([rows for source, rows in self.writes if source == push_source])


def _service(
    pusher: RecordingPusher, offline: RecordingOffline, feast: list[str] | None = None
) -> FeatureStoreService:
    suffix = uuid.uuid4().hex[:8]
    settings = FeatureStoreSettings(
        consumer_group=f"feature-store-unit-{suffix}",
        mobile_money_topic=f"unit.mm.{suffix}",
        repayments_topic=f"unit.rp.{suffix}",
        erasures_topic=f"unit.er.{suffix}",
        erasures_completed_topic=f"unit.done.{suffix}",
        max_batch=50,
        batch_max_wait_ms=20,
        metrics_port=0,
    )

    async def erase_feast(member: MemberRef) -> int:
        (feast if feast is not None else []).append(member.key)
        return 0

    service = create_feature_store_app(
        settings, pusher=pusher, publisher=Letters(), feast_eraser=erase_feast, offline=offline
    )
    service.app.producer.key_partition = lambda topic, key: TP(topic, 0)  # type: ignore[method-assign]
    return service


def _writes(outcome: str) -> float:
    labels = {"push_source": "mobile_money_push", "outcome": outcome}
    return REGISTRY.get_sample_value("alama_feature_store_offline_writes_total", labels) or 0.0


def _assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got, want = got.reset_index(drop=True), want.reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    assert list(got["member_id"]) == list(want["member_id"])
    assert (
        pd.to_datetime(got["event_timestamp"], utc=True)
        == pd.to_datetime(want["event_timestamp"], utc=True)
    ).all()
    for name in want.columns[2:]:
        for a, b in zip(got[name], want[name], strict=True):
            np.testing.assert_array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float))


async def test_every_pushed_row_is_written_offline_as_pushed(
    world_events_small: WorldEvents,
) -> None:
    data = world_events_small
    members = data.members(3)
    envelopes = data.of(data.mobile_money, members)
    pusher, offline = RecordingPusher(), RecordingOffline()
    service = _service(pusher, offline)
    ok = _writes("ok")

    async with service.agents["mobile_money"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))

    pushed = pd.concat([rows for source, rows in pusher.pushes if source == "mobile_money_push"])
    _assert_frames_equal(offline.rows("mobile_money_push"), pushed)
    assert _writes("ok") - ok == len(offline.writes) == len(pusher.pushes)
    keys = [member_key(DEV_TENANT, m) for m in members]
    assert not any(service.mobile_money.table[k]["offline"] for k in keys)


async def test_a_failed_offline_write_leaves_the_rows_owed_until_the_retry_writes_them(
    world_events_small: WorldEvents,
) -> None:
    data = world_events_small
    members = data.members(2)
    keys = [member_key(DEV_TENANT, m) for m in members]
    envelopes = data.of(data.mobile_money, members)
    pusher, offline = RecordingPusher(), RecordingOffline(down=True)
    service = _service(pusher, offline)
    failed = _writes("failed")

    async with service.agents["mobile_money"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        # online is served; the first failed write stops the batches from trying again
        assert len(pusher.pushes) > 1
        assert offline.attempts == 1 and _writes("failed") - failed == 1
        owed = {k: WalletHistory.from_json(service.mobile_money.table[k]) for k in keys}
        assert not any(h.pending for h in owed.values())
        assert sum(len(h.offline) for h in owed.values()) == sum(len(r) for _, r in pusher.pushes)

        # the retry fails too: nothing is lost; then it succeeds and every row is written once
        assert await service.write_owed_offline() == 0
        assert offline.attempts == 2
        offline.down = False
        sent = await service.write_owed_offline()
        assert await service.write_owed_offline() == 0

    pushed = pd.concat([rows for _, rows in pusher.pushes])
    assert sent == len(pushed)
    written = offline.rows("mobile_money_push")
    _assert_frames_equal(
        written.sort_values(["member_id", "event_timestamp"]),
        pushed.sort_values(["member_id", "event_timestamp"]),
    )
    assert not any(service.mobile_money.table[k]["offline"] for k in keys)
    assert not service.offline_failing


async def test_the_offline_write_runs_beside_the_push_and_a_failed_push_owes_nothing(
    world_events_small: WorldEvents,
) -> None:
    """The two stores are written at once (the offline write starts before the push ends); a
    push that fails leaves its members pending with nothing owed offline (the retried push
    computes the same rows and writes them again), and every pushed row reaches the offline
    store."""
    data = world_events_small
    members = data.members(2)
    keys = [member_key(DEV_TENANT, m) for m in members]
    envelopes = data.of(data.mobile_money, members)
    overlapped: list[bool] = []

    class SlowPusher(RecordingPusher):
        async def push(self, push_source: str, rows: pd.DataFrame) -> None:
            before = offline.attempts
            await asyncio.sleep(0.05)
            overlapped.append(offline.attempts > before)
            await super().push(push_source, rows)

    pusher, offline = SlowPusher(failures=1), RecordingOffline()
    service = _service(pusher, offline)

    async with service.agents["mobile_money"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        states = [WalletHistory.from_json(service.mobile_money.table[k]) for k in keys]
        assert not any(h.offline for h in states)  # written, or recomputed by the retry
        if any(h.pending for h in states):  # the failed push's members: the retry pushes them
            assert await service.push_pending()
        assert not any(service.mobile_money.table[k]["pending"] for k in keys)

    assert overlapped and all(overlapped)
    pushed = pd.concat([rows for _, rows in pusher.pushes])
    written = offline.rows("mobile_money_push").drop_duplicates(["member_id", "event_timestamp"])
    _assert_frames_equal(
        written.merge(pushed[["member_id", "event_timestamp"]]).sort_values(
            ["member_id", "event_timestamp"]
        ),
        pushed.sort_values(["member_id", "event_timestamp"]),
    )


async def test_an_erased_members_owed_rows_are_never_written(
    world_events_small: WorldEvents,
) -> None:
    data = world_events_small
    raw, raw_other = data.members(2)
    envelopes = data.of(data.repayments, [raw, raw_other])
    pusher, offline, feast = RecordingPusher(), RecordingOffline(down=True), []  # type: ignore[var-annotated]
    service = _service(pusher, offline, feast)
    ref = MemberRef.of(DEV_TENANT, raw, b"k")
    other = member_key(DEV_TENANT, raw_other)

    async with service.agents["repayments"].test_context() as agent:
        for envelope in envelopes:
            await agent.put(encode(envelope), wait=False)
        await _until(lambda: sum(_outcomes(agent.results.values())) == len(envelopes))
        assert service.repayments.table[ref.key]["offline"]
        async with service.agents["erasures"].test_context() as erasures:
            request = ErasureRequest.new(ref, requested_by="test")
            await erasures.put(encode(wrap(erasure_requested(request), producer="audit")))
            await _until(lambda: feast == [ref.key])
        offline.down = False
        assert await service.write_owed_offline() > 0

    written = offline.rows("repayment_push")
    assert set(written["member_id"]) == {other}


def _histories(data: WorldEvents, members: list[str]) -> tuple[dict[str, WalletHistory], ...]:
    keys = {member_key(DEV_TENANT, m) for m in members}
    wallets = {k: WalletHistory(member_id=k) for k in keys}
    for envelope in data.of(data.mobile_money, members):
        row = wallet_transaction(transaction_event(envelope))
        wallets[row.member_id].add(row)
    return (wallets,)


def test_owed_rows_survive_the_state_json_exactly(world_events_small: WorldEvents) -> None:
    data = world_events_small
    members = data.members(4)
    (wallets,) = _histories(data, members)
    repayments = {k: RepaymentHistory(member_id=k) for k in wallets}
    for envelope in data.of(data.repayments, members):
        row = recorded_repayment(repayment_event(envelope))
        repayments[row.member_id].add(row)
    frames = (
        mobile_money_rows(
            list(wallets.values()), {k: h.next_as_of_ns() for k, h in wallets.items()}
        ),
        repayment_rows(
            list(repayments.values()), {k: h.next_as_of_ns() for k, h in repayments.items()}
        ),
    )
    codec = codecs.get_codec("json")
    for rows in frames:
        rows.iloc[0, 2] = np.nan  # a missing value stays missing
        kept = [
            json.loads(json.dumps(codec.loads(codec.dumps(r)), allow_nan=False))
            for r in owed_rows(rows).values()
        ]
        back = owed_frame(kept)
        _assert_frames_equal(back, rows)
        assert [len(r) for r in records(back)] == [rows.shape[1]] * len(rows)


def test_offline_columns_and_types_are_training_layout(world_events_small: WorldEvents) -> None:
    """The columns come from the feature functions (the pushed frame), and each type is the one
    training's loader gives the same column in its own tables."""
    data = world_events_small
    members = data.members(3)
    tables = chunk_tables(loan_book_from_world(data.world))
    (wallets,) = _histories(data, members)
    rows = mobile_money_rows(
        list(wallets.values()), {k: h.next_as_of_ns() for k, h in wallets.items()}
    )
    training = tables["mobile_money_features"]
    assert list(rows.columns) == list(training.columns)
    assert column_types(list(rows.columns)) == {c: _pg_type(training[c]) for c in training}
    repayments = tables["repayment_features"]
    assert column_types(list(repayments.columns)) == {
        c: _pg_type(repayments[c]) for c in repayments
    }


@pytest.mark.parametrize(
    ("source", "table"),
    [
        (
            PostgreSQLSource(
                name="q",
                query="SELECT * FROM feast_x.mobile_money_features",
                timestamp_field="event_timestamp",
            ),
            "feast_x.mobile_money_features",
        ),
        (
            PostgreSQLSource(
                name="q",
                query="select *  from repayment_features;",
                timestamp_field="event_timestamp",
            ),
            "feast.repayment_features",
        ),
        (
            PostgreSQLSource(
                name="t", table="other.member_rows", timestamp_field="event_timestamp"
            ),
            "other.member_rows",
        ),
    ],
)
def test_a_batch_source_names_its_table(source: PostgreSQLSource, table: str) -> None:
    found = batch_table(source, "feast")
    assert found.table == table
    assert found.journal == f"{table}_streamed"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM feast.a JOIN feast.b USING (member_id)",
        "SELECT member_id FROM feast.a",
        "SELECT * FROM feast.a; DROP TABLE feast.b",
        'SELECT * FROM "Feast".a',
    ],
)
def test_a_batch_source_that_is_not_one_plain_table_is_refused(query: str) -> None:
    source = PostgreSQLSource(name="q", query=query, timestamp_field="event_timestamp")
    with pytest.raises(OfflinePushUnsupported):
        batch_table(source, "feast")
    with pytest.raises(OfflinePushUnsupported):
        OfflineTable("feast", "a; drop")
