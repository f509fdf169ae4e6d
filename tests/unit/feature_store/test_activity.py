"""Member state: dedupe by id, as-of always moving forward, pruning, changelog round trip,
and payload validation with the dead-letter reasons it raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.envelope import wrap
from services.common.errors import InvalidEvent
from services.common.features import (
    MOBILE_MONEY_HISTORY_DAYS,
    REPAYMENT_MONTHS,
    TRANSACTION_KINDS,
)
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    MobileMoneyTransaction,
    TransactionKind,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.feature_store.activity import (
    NS_PER_MICROSECOND,
    Outcome,
    RepaymentHistory,
    WalletHistory,
    WalletTransaction,
)
from services.feature_store.events import recorded_repayment, wallet_transaction
from tests.unit.feature_store.conftest import WorldEvents, repayment_event, transaction_event

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ns(at: datetime) -> int:
    return int(at.timestamp()) * 10**9


def _txn(txn_id: str, at: datetime, amount: float = 100.0) -> WalletTransaction:
    return WalletTransaction(txn_id, "M1", _ns(at), "inflow", amount, 1_000.0)


def test_a_redelivered_transaction_changes_nothing() -> None:
    history = WalletHistory(member_id="M1")
    assert history.add(_txn("t1", T0)) is Outcome.ADDED
    history.mark_pushed(history.next_as_of_ns())
    before = history.to_json()

    assert history.add(_txn("t1", T0, amount=999.0)) is Outcome.DUPLICATE
    assert history.to_json() == before and not history.pending


def test_as_of_is_just_after_the_latest_event_and_always_moves_forward() -> None:
    history = WalletHistory(member_id="M1")
    history.add(_txn("t2", T0))
    history.add(_txn("t1", T0 - timedelta(days=2)))
    as_of = history.next_as_of_ns()
    assert as_of == _ns(T0) + NS_PER_MICROSECOND  # includes t2: features use data before as-of
    history.mark_pushed(as_of)

    # a late, older event must still produce a newer timestamp, or Redis would drop the write
    assert history.add(_txn("t0", T0 - timedelta(days=1))) is Outcome.ADDED
    assert history.next_as_of_ns() == as_of + NS_PER_MICROSECOND


def test_rows_out_of_the_window_are_pruned_and_older_arrivals_are_stale() -> None:
    history = WalletHistory(member_id="M1")
    old = T0 - timedelta(days=MOBILE_MONEY_HISTORY_DAYS + 1)
    history.add(_txn("old", old))
    history.add(_txn("new", T0))
    history.mark_pushed(history.next_as_of_ns())
    assert list(history.rows) == ["new"]
    assert history.add(_txn("older", old - timedelta(days=1))) is Outcome.STALE
    assert history.add(_txn("old", old)) is Outcome.STALE and not history.pending


@settings(max_examples=400, deadline=None)
@given(
    as_of=st.integers(-(10**18), 4 * 10**18),
    due=st.integers(-(10**18), 4 * 10**18),
)
def test_repayments_are_kept_exactly_while_their_due_month_is_in_reach(
    as_of: int, due: int
) -> None:
    """The kept rule, one threshold per as-of, is the month count's: `REPAYMENT_MONTHS` calendar
    months between due date and as-of (UTC, the datetime64[M] count training uses)."""

    def month(ns: int) -> int:
        return int(np.datetime64(ns // 1000, "us").astype("datetime64[M]").astype(np.int64))

    row = ["r", "M1", "L1", due, 100.0, 100.0, 0, due]
    expected = month(as_of) - month(due) <= REPAYMENT_MONTHS
    assert RepaymentHistory.usable_at(row, as_of) is expected
    history = RepaymentHistory(member_id="M1", rows={"r": row})
    history.mark_pushed(as_of)
    assert ("r" in history.rows) is expected


def test_a_transaction_exactly_the_window_old_is_kept_and_a_nanosecond_older_is_not() -> None:
    as_of = _ns(T0)
    edge = as_of - MOBILE_MONEY_HISTORY_DAYS * 86_400 * 10**9
    history = WalletHistory(member_id="M1")
    for name, at in (("edge", edge), ("older", edge - 1), ("new", as_of - 1)):
        history.rows[name] = [name, "M1", at, "inflow", 1.0, 1.0]
    history.mark_pushed(as_of)
    assert sorted(history.rows) == ["edge", "new"]


def test_histories_survive_the_changelog_round_trip(world_events_small: WorldEvents) -> None:
    member = world_events_small.members(1)[0]
    key = member_key(DEV_TENANT, member)  # the tables' key: the tenant's member
    wallet, repay = WalletHistory(member_id=key), RepaymentHistory(member_id=key)
    for envelope in world_events_small.of(world_events_small.mobile_money, [member]):
        wallet.add(wallet_transaction(transaction_event(envelope)))
    for envelope in world_events_small.of(world_events_small.repayments, [member]):
        repay.add(recorded_repayment(repayment_event(envelope)))
    assert wallet.rows and repay.rows
    for history in (wallet, repay):
        restored = type(history).from_json(json.loads(json.dumps(history.to_json())))
        assert restored == history


def test_every_proto_kind_is_a_feature_kind() -> None:
    assert set(TRANSACTION_KINDS) == {
        name.removeprefix("TRANSACTION_KIND_").lower()
        for name in TransactionKind.keys()
        if name != "TRANSACTION_KIND_UNSPECIFIED"
    }


def _mm(**fields: object) -> MobileMoneyTransaction:
    base: dict[str, object] = {
        "transaction_id": "t1",
        "tenant_id": "sacco-a",
        "member_id": "M1",
        "kind": TransactionKind.TRANSACTION_KIND_INFLOW,
        "amount_kes": 10.0,
        "balance_kes": 10.0,
    }
    return MobileMoneyTransaction(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_mm(member_id=""), "missing_member_id"),
        (_mm(tenant_id=""), "missing_tenant_id"),
        (_mm(member_id="sacco-b/M1"), "invalid_member"),
        (_mm(transaction_id=""), "missing_transaction_id"),
        (_mm(kind=TransactionKind.TRANSACTION_KIND_UNSPECIFIED), "unknown_transaction_kind"),
        (_mm(amount_kes=-5.0), "negative_amount"),
        (_mm(balance_kes=float("nan")), "invalid_amount"),
    ],
)
def test_bad_transactions_raise_their_reason(payload: MobileMoneyTransaction, reason: str) -> None:
    envelope = wrap(payload, producer="test")
    with pytest.raises(InvalidEvent) as raised:
        wallet_transaction(transaction_event(envelope))
    assert raised.value.reason == reason


def test_transaction_time_falls_back_to_the_envelope() -> None:
    envelope = wrap(_mm(), producer="test", occurred_at=T0)
    assert wallet_transaction(transaction_event(envelope)).occurred_at_ns == _ns(T0)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"member_id": ""}, "missing_member_id"),
        ({"tenant_id": ""}, "missing_tenant_id"),
        ({"loan_id": ""}, "missing_loan_id"),
        ({"amount_paid_kes": -1.0}, "negative_amount"),
        ({"due": False}, "missing_due_date"),
    ],
)
def test_bad_repayments_raise_their_reason(fields: dict[str, object], reason: str) -> None:
    with_due = bool(fields.pop("due", True))
    base: dict[str, object] = {
        "repayment_id": "r1",
        "tenant_id": "sacco-a",
        "member_id": "M1",
        "loan_id": "L1",
        "amount_due_kes": 100.0,
        "amount_paid_kes": 100.0,
    }
    payload = RepaymentRecorded(**(base | fields))  # type: ignore[arg-type]
    if with_due:
        payload.due_date.FromDatetime(T0)
    with pytest.raises(InvalidEvent) as raised:
        recorded_repayment(repayment_event(wrap(payload, producer="test")))
    assert raised.value.reason == reason
