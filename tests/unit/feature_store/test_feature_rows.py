"""No training/serving skew: features from streamed events equal training's computation.

Training computes `services.common.features` over the world's tables; the service streams the
same rows as envelopes, keeps them in member state (pruned as it pushes) and computes with the
same functions. At the same as-of, both must agree exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.common import features as F
from services.common.members import DEV_TENANT, member_key, split_member_key
from services.feature_store.activity import RepaymentHistory, WalletHistory
from services.feature_store.events import recorded_repayment, wallet_transaction
from services.feature_store.feature_rows import (
    as_of_series,
    mobile_money_rows,
    repayment_rows,
)
from tests.unit.feature_store.conftest import WorldEvents, repayment_event, transaction_event


def keyed(members: list[str]) -> dict[str, str]:
    """Each member's key in the feature store's tables (the tenant's member) -> its id."""
    return {member_key(DEV_TENANT, m): m for m in members}


def assert_rows_equal(rows: pd.DataFrame, expected: pd.DataFrame, as_of: pd.Series) -> None:
    """Pushed rows (member_id: the tenant-scoped key, event_timestamp, features) against
    training's frame over the world's own member ids."""
    rows = rows.assign(member_id=[split_member_key(k)[1] for k in rows["member_id"]])
    rows = rows.set_index("member_id")
    assert list(rows.index) == list(expected.index)
    assert (pd.to_datetime(rows["event_timestamp"], utc=True) == as_of.loc[rows.index]).all()
    assert list(rows.columns[1:]) == list(expected.columns)
    for name in expected.columns:
        for member in expected.index:
            got, want = rows.at[member, name], expected.at[member, name]
            np.testing.assert_array_equal(np.asarray(got, dtype=float), np.asarray(want), name)


def test_streamed_mobile_money_features_equal_training(world_events_small: WorldEvents) -> None:
    data = world_events_small
    members = data.members(6)
    ids = keyed(members)
    histories = {k: WalletHistory(member_id=k) for k in ids}
    envelopes = data.of(data.mobile_money, members)
    # stream in batches, pushing (and pruning) after each, as the service does
    for start in range(0, len(envelopes), 97):
        touched = set()
        for envelope in envelopes[start : start + 97]:
            row = wallet_transaction(transaction_event(envelope))
            histories[row.member_id].add(row)
            touched.add(row.member_id)
        for member in touched:
            histories[member].mark_pushed(histories[member].next_as_of_ns())
    as_of_ns = {m: h.next_as_of_ns() for m, h in histories.items()}

    rows = mobile_money_rows(list(histories.values()), as_of_ns)

    as_of = as_of_series({ids[k]: ns for k, ns in as_of_ns.items()})
    expected = F.mobile_money_features(data.table("mobile_money", members), as_of)
    assert expected["mm_txn_count_90d"].min() > 0  # the latest transactions are included
    assert_rows_equal(rows, expected, as_of)


def test_streamed_repayment_features_equal_training(world_events_small: WorldEvents) -> None:
    data = world_events_small
    members = data.members(6)
    ids = keyed(members)
    histories = {k: RepaymentHistory(member_id=k) for k in ids}
    for envelope in data.of(data.repayments, members):
        row = recorded_repayment(repayment_event(envelope))
        histories[row.member_id].add(row)
    as_of_ns = {m: h.next_as_of_ns() for m, h in histories.items()}

    rows = repayment_rows(list(histories.values()), as_of_ns)

    as_of = as_of_series({ids[k]: ns for k, ns in as_of_ns.items()})
    expected = F.repayment_features(data.table("repayments", members), as_of)
    assert expected["rp_months_observed"].min() > 0
    assert_rows_equal(rows, expected, as_of)


def test_feature_values_convert_to_the_protos_feasts_own_function_gives() -> None:
    """The pusher's direct conversion of doubles (NaN unset, infinities kept) and lists of
    doubles (empty and NaN-holding ones too) equals `python_values_to_proto_values`."""
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from services.feature_store.push import proto_values

    rng = np.random.default_rng(3)
    doubles = np.concatenate([rng.normal(size=50), [np.nan, np.inf, -np.inf, 0.0, -0.0]])
    lists = np.empty(4, dtype=object)
    lists[:] = [rng.random(24).tolist(), [], [0.5, float("nan")], [1.0]]
    strings = np.array(["t1:m1", "t1:m2"], dtype=object)
    for values, kind in (
        (doubles, ValueType.DOUBLE),
        (lists, ValueType.DOUBLE_LIST),
        (strings, ValueType.STRING),
    ):
        ours = [v.SerializeToString() for v in proto_values(values, kind)]
        feasts = [v.SerializeToString() for v in python_values_to_proto_values(values, kind)]
        assert ours == feasts, kind
