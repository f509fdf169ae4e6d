"""The one feature definition: no look-ahead, and one member alone equals the batch (serving)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.common import features as F
from training.world import World, generate_world


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(400, seed=5)


@pytest.fixture(scope="module")
def as_of(world: World) -> pd.Series:
    apps = world.applications
    return pd.Series(
        pd.to_datetime(apps["applied_at"], utc=True).to_numpy(),
        index=pd.Index(apps["member_id"].astype(str)),
    )


def test_protected_attributes_are_never_model_inputs() -> None:
    inputs = set(F.TABULAR_FEATURES) | set(F.REPAYMENT_SEQUENCES) | set(F.MOBILE_MONEY_SEQUENCES)
    for attribute in F.PROTECTED_ATTRIBUTES:
        assert not any(attribute in name for name in inputs), attribute


def test_mobile_money_features_ignore_everything_at_or_after_as_of(
    world: World, as_of: pd.Series
) -> None:
    before = F.mobile_money_features(world.mobile_money, as_of)
    later = world.mobile_money[
        world.mobile_money["occurred_at"].to_numpy()
        >= world.mobile_money["member_id"].astype(str).map(as_of).to_numpy()
    ]
    assert len(later) > 0, "the world must hold post-application transactions for this to bite"
    only_past = world.mobile_money.drop(index=later.index)
    pd.testing.assert_frame_equal(before, F.mobile_money_features(only_past, as_of))


def test_repayment_features_ignore_records_not_yet_recorded(world: World, as_of: pd.Series) -> None:
    full = F.repayment_features(world.repayments, as_of)
    # pretend every record were only recorded after the application: nothing may remain
    late = world.repayments.assign(
        recorded_at=world.repayments["member_id"].astype(str).map(as_of).to_numpy()
    )
    empty = F.repayment_features(late, as_of)
    assert (empty["rp_months_observed"] == 0).all()
    assert (full["rp_months_observed"] > 0).mean() > 0.5


def test_one_member_alone_gets_the_same_features_as_in_the_batch(
    world: World, as_of: pd.Series
) -> None:
    batch_mm = F.mobile_money_features(world.mobile_money, as_of)
    batch_rp = F.repayment_features(world.repayments, as_of)
    for member in as_of.index[:25]:
        one = as_of.loc[[member]]
        mine_mm = world.mobile_money[world.mobile_money["member_id"].astype(str) == member]
        mine_rp = world.repayments[world.repayments["member_id"].astype(str) == member]
        pd.testing.assert_frame_equal(
            F.mobile_money_features(mine_mm, one), batch_mm.loc[[member]], check_exact=False
        )
        pd.testing.assert_frame_equal(
            F.repayment_features(mine_rp, one), batch_rp.loc[[member]], check_exact=False
        )


@pytest.mark.parametrize("as_categories", [True, False])
def test_kinds_as_text_or_categories_and_absent_kinds_give_the_same_features(
    world: World, as_of: pd.Series, as_categories: bool
) -> None:
    """The feature store hands categorical member and kind columns, training plain text; a
    kind nobody used (here betting and overdraft draws) sums to zero either way."""
    txns = world.mobile_money
    as_text = txns.assign(
        member_id=txns["member_id"].astype(str).astype(object),
        kind=txns["kind"].astype(str).astype(object),
    )
    expected = F.mobile_money_features(as_text, as_of)
    converted = as_text.astype({"member_id": "category", "kind": "category"})
    pd.testing.assert_frame_equal(
        F.mobile_money_features(converted if as_categories else as_text, as_of), expected
    )
    without = ~as_text["kind"].isin(["betting", "overdraft_draw"])
    narrowed = (converted if as_categories else as_text)[without.to_numpy()]
    if as_categories:
        narrowed = narrowed.assign(kind=narrowed["kind"].cat.remove_unused_categories())
    features = F.mobile_money_features(narrowed, as_of)
    assert (features["mm_betting_sum_90d"] == 0).all()
    assert (features["mm_overdraft_draw_count_90d"] == 0).all()
    assert (np.stack(features["mm_betting_seq"]) == 0).all()
    pd.testing.assert_series_equal(
        features["mm_inflow_sum_90d"],
        F.mobile_money_features(as_text[without], as_of)["mm_inflow_sum_90d"],
    )
    assert (expected["mm_betting_sum_90d"] > 0).any(), "the world must hold betting to bite"


def test_model_inputs_have_the_bundle_shapes(world: World, as_of: pd.Series) -> None:
    apps = world.applications.set_index(world.applications["member_id"].astype(str))
    profile = F.profile_features(world.profile_snapshots, as_of)
    mobile = F.mobile_money_features(world.mobile_money, as_of)
    frame = pd.concat(
        [
            profile,
            mobile,
            F.repayment_features(world.repayments, as_of),
            F.bureau_features(bureau_table([]), as_of),
            F.application_features(
                apps["amount_kes"],
                apps["term_months"],
                apps["product"],
                profile,
                mobile["mm_inflow_sum_90d"],
            ).set_index(as_of.index),
        ],
        axis=1,
    )
    inputs = F.model_inputs(frame)
    n = len(as_of)
    assert inputs.tabular.shape == (n, len(F.TABULAR_FEATURES))
    assert inputs.repayments.shape == (n, F.REPAYMENT_MONTHS, len(F.REPAYMENT_CHANNELS))
    assert inputs.mobile_money.shape == (n, F.MOBILE_MONEY_WEEKS, len(F.MOBILE_MONEY_CHANNELS))
    assert np.isfinite(inputs.tabular).all() and np.isfinite(inputs.mobile_money).all()
    # masks: left-padded (once observed, every later step is observed)
    for mask in (inputs.repayment_mask, inputs.mobile_money_mask):
        assert set(np.unique(mask)) <= {0.0, 1.0}
    assert (np.diff(inputs.mobile_money_mask, axis=1) >= 0).all()
    with pytest.raises(KeyError, match="features missing"):
        F.model_inputs(frame.drop(columns=["rp_mask_seq"]))


def test_profile_features_take_the_latest_snapshot_not_after_as_of(
    world: World, as_of: pd.Series
) -> None:
    profile = F.profile_features(world.profile_snapshots, as_of)
    snaps = world.profile_snapshots.assign(
        member_id=world.profile_snapshots["member_id"].astype(str)
    )
    for member in as_of.index[:20]:
        mine = snaps[(snaps["member_id"] == member) & (snaps["snapshot_at"] <= as_of[member])]
        expected = mine.sort_values("snapshot_at").iloc[-1]
        assert profile.loc[member, "deposits_kes"] == pytest.approx(expected["deposits_kes"])


def bureau_table(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    columns = [
        "member_id", "bureau", "account_id", "reported_at", "opened_at", "balance_kes",
        "arrears_kes", "days_past_due", "status", "negative_listing",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    for c in ("reported_at", "opened_at"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def test_bureau_features_use_each_accounts_latest_report_before_as_of() -> None:
    t = "2025-06-01T00:00:00Z"
    bureau = bureau_table(
        [
            # account a: open and current in March, 120 days late and written off in May
            ("m1", "metropol", "a", "2025-03-01T00:00Z", "2024-10-01T00:00Z", 9000, 0, 0, "open",
             0),
            ("m1", "metropol", "a", "2025-05-01T00:00Z", "2024-10-01T00:00Z", 9000, 5000, 120,
             "written_off", 1),
            # account b: another bureau, open, reported after as-of (must be ignored)
            ("m1", "transunion", "b", "2025-07-01T00:00Z", "2025-06-15T00:00Z", 4000, 0, 0, "open",
             0),
            # the same account id at another bureau is another record
            ("m1", "transunion", "a", "2025-04-01T00:00Z", "2023-01-01T00:00Z", 1000, 0, 10, "open",
             0),
        ]
    )  # fmt: skip
    as_of = pd.Series(pd.to_datetime([t, t], utc=True), index=pd.Index(["m1", "m2"]))
    got = F.bureau_features(bureau, as_of)
    assert list(got.columns) == list(F.BUREAU_FEATURES)
    m1 = got.loc["m1"]
    assert m1["bureau_accounts"] == 2 and m1["bureau_open_accounts"] == 1
    assert m1["bureau_written_off"] == 1 and m1["bureau_negative_listings"] == 1
    assert m1["bureau_max_days_past_due"] == 120 and m1["bureau_arrears_kes"] == 5000
    assert m1["bureau_balance_kes"] == 1000  # only the open account's balance
    assert m1["bureau_opened_12m"] == 1  # account a opened eight months before
    assert (got.loc["m2"] == 0).all()  # no record: a thin file, zeros


def test_instants_are_utc_nanoseconds_whatever_their_zone_unit_or_type() -> None:
    from services.common.features import _ns

    ns = np.array([0, 1_700_000_000_123_456_789, -5], dtype=np.int64)
    aware = pd.Series(pd.to_datetime(ns, unit="ns", utc=True))
    for values in (
        aware,
        aware.dt.tz_convert("Africa/Nairobi"),
        aware.dt.tz_localize(None),  # naive: read as UTC
        pd.DatetimeIndex(aware),
        aware.astype(object),  # Timestamps in an object column
    ):
        assert _ns(values).tolist() == ns.tolist(), values.dtype
    micro = pd.Series(np.array(["2026-01-01T00:00:00.123456"], dtype="datetime64[us]"))
    assert _ns(micro).tolist() == [1_767_225_600_123_456_000]
