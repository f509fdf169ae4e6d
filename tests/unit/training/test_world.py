"""The synthetic SACCO world: schemas, determinism, point-in-time order, oracle.

Its events are the simulator's (tests/unit/simulator/test_events.py)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from services.common.features import TRANSACTION_KINDS
from training.world import (
    PD_INPUTS,
    World,
    generate_world,
    true_probability_of_default,
)

N = 2_000
SEED = 20250101
UTC_NS = "datetime64[ns, UTC]"

SCHEMAS: dict[str, dict[str, str]] = {
    "members": {
        "member_id": "object",
        "sacco_id": "category",
        "national_id": "object",
        "phone_number": "object",
        "gender": "category",
        "age": "int64",
        "age_band": "category",
        "county": "category",
        "employment_type": "category",
        "monthly_income_kes": "float64",
        "joined_at": UTC_NS,
    },
    "applications": {
        "application_id": "object",
        "member_id": "object",
        "sacco_id": "category",
        "applied_at": UTC_NS,
        "product": "category",
        "amount_kes": "float64",
        "term_months": "int64",
        "channel": "category",
        "declared_monthly_income_kes": "float64",
        "true_pd": "float64",
        "default_12m": "int64",
    },
    "profile_snapshots": {
        "member_id": "category",
        "snapshot_at": UTC_NS,
        "tenure_months": "int64",
        "deposits_kes": "float64",
        "share_capital_kes": "float64",
        "n_guarantors": "int64",
        "existing_loans": "int64",
        "existing_loan_balance_kes": "float64",
        "bureau_listed": "int64",
        "monthly_income_kes": "float64",
        "employment_type": "category",
    },
    "repayments": {
        "member_id": "category",
        "loan_id": "category",
        "month_offset": "int64",
        "due_date": UTC_NS,
        "amount_due_kes": "float64",
        "amount_paid_kes": "float64",
        "days_late": "int64",
        "recorded_at": UTC_NS,
    },
    "mobile_money": {
        "transaction_id": "int64",
        "member_id": "category",
        "occurred_at": UTC_NS,
        "kind": "category",
        "amount_kes": "float64",
        "balance_kes": "float64",
    },
}


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(N, SEED)


def with_applied_at(table: pd.DataFrame, world: World) -> pd.DataFrame:
    applied = world.applications[["member_id", "applied_at"]]
    return table.merge(applied.astype({"member_id": str}), on="member_id", how="left")


def test_tables_have_the_documented_columns_and_dtypes(world: World) -> None:
    for name, schema in SCHEMAS.items():
        table = getattr(world, name)
        assert list(table.columns) == list(schema), name
        assert {c: str(t) for c, t in table.dtypes.items()} == schema, name


def test_ids_are_unique_and_well_formed(world: World) -> None:
    members, apps = world.members, world.applications
    assert len(members) == N and members["member_id"].is_unique
    assert members["member_id"].str.fullmatch(r"M\d{7}").all()
    assert members["national_id"].str.fullmatch(r"\d{8}").all() and members["national_id"].is_unique
    assert members["phone_number"].str.fullmatch(r"2547\d{8}").all()
    assert members["phone_number"].is_unique
    assert (
        apps["application_id"].is_unique and apps["application_id"].str.fullmatch(r"A\d{7}").all()
    )
    assert sorted(apps["member_id"]) == sorted(members["member_id"])  # one application each
    assert world.mobile_money["transaction_id"].is_unique
    assert not world.repayments.duplicated(["member_id", "month_offset"]).any()
    assert not world.profile_snapshots.duplicated(["member_id", "snapshot_at"]).any()
    assert set(members["sacco_id"]) <= {f"S{i:02d}" for i in range(1, 9)}
    assert members["county"].nunique() == 15


def test_demographics_and_loan_terms_are_plausible(world: World) -> None:
    members, apps = world.members, world.applications
    assert members["age"].between(18, 75).all()
    assert set(members["gender"]) == {"female", "male"}
    assert set(members["employment_type"]) == {"salaried", "self_employed", "farmer", "casual"}
    assert (members["joined_at"] < apps["applied_at"]).all()
    assert (apps["amount_kes"] >= 3_000).all() and (apps["term_months"] > 0).all()
    year = apps["applied_at"].dt.year
    assert (year == 2025).all() and apps["applied_at"].dt.month.nunique() == 12
    declared = apps["declared_monthly_income_kes"] / members["monthly_income_kes"]
    assert (declared > 1.15).mean() > 0.05  # some applicants inflate their income


def test_label_rate_and_oracle_auc_are_plausible(world: World) -> None:
    apps = world.applications
    assert apps["true_pd"].between(0, 1, inclusive="neither").all()
    assert set(apps["default_12m"]) == {0, 1}
    assert 0.07 <= apps["default_12m"].mean() <= 0.16
    assert abs(apps["default_12m"].mean() - apps["true_pd"].mean()) < 0.03
    assert 0.74 <= roc_auc_score(apps["default_12m"], apps["true_pd"]) <= 0.90


def test_same_seed_gives_the_same_world_and_another_seed_does_not() -> None:
    first, again = generate_world(300, 7), generate_world(300, 7)
    assert first.fingerprint() == again.fingerprint()
    pd.testing.assert_frame_equal(first.mobile_money, again.mobile_money)
    assert generate_world(300, 8).fingerprint() != first.fingerprint()


def test_save_and_load_keep_the_fingerprint(world: World, tmp_path: Path) -> None:
    world.save(tmp_path)
    meta = json.loads((tmp_path / "world.json").read_text())
    assert meta["seed"] == SEED and meta["n_members"] == N
    assert meta["rows"]["mobile_money"] == len(world.mobile_money)
    loaded = World.load(tmp_path)
    assert loaded.fingerprint() == world.fingerprint() == meta["fingerprint"]
    for name in World.TABLES:
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(world, name))


def test_repayments_are_recorded_before_the_application(world: World) -> None:
    rep = with_applied_at(world.repayments, world)
    assert rep["month_offset"].between(-24, -1).all()
    assert (rep["due_date"] < rep["applied_at"]).all()
    assert (rep["recorded_at"] > rep["due_date"]).all()
    assert (rep["recorded_at"] <= rep["applied_at"]).all()
    assert (rep["days_late"] >= 0).all()
    assert (rep["amount_paid_kes"] <= rep["amount_due_kes"]).all()
    assert 0.05 < (rep["days_late"] > 0).mean() < 0.5
    per_member = world.repayments.groupby("member_id", observed=False).size()
    assert len(per_member) == N and per_member.max() <= 24
    assert 0.10 <= (per_member < 24).mean() <= 0.35  # short or empty histories exist
    assert (per_member == 0).mean() > 0.03


def test_profile_snapshots_are_monthly_around_the_application(world: World) -> None:
    snaps = with_applied_at(world.profile_snapshots, world)
    assert (snaps["snapshot_at"].dt.day == 1).all()
    app_month = snaps["applied_at"].dt.year * 12 + snaps["applied_at"].dt.month
    offset = snaps["snapshot_at"].dt.year * 12 + snaps["snapshot_at"].dt.month - app_month
    assert offset.between(-6, 3).all()
    assert (offset == 0).groupby(snaps["member_id"]).sum().eq(1).all()  # a point-in-time row each
    assert (snaps["tenure_months"] >= 1).all() and (snaps["deposits_kes"] >= 0).all()
    assert snaps["bureau_listed"].isin([0, 1]).all()
    assert snaps.groupby("member_id")["deposits_kes"].nunique().gt(1).mean() > 0.9  # they evolve


def test_mobile_money_balances_follow_the_wallet_arithmetic(world: World) -> None:
    mm = world.mobile_money
    assert (mm["amount_kes"] > 0).all() and (mm["balance_kes"] >= 0).all()
    codes = mm["member_id"].cat.codes.to_numpy()
    times = mm["occurred_at"].to_numpy()
    assert (np.diff(codes) >= 0).all()
    same = codes[1:] == codes[:-1]
    assert (times[1:][same] >= times[:-1][same]).all()  # sorted by member, then time
    sign = mm["kind"].map({"inflow": 1, "overdraft_draw": 1}).fillna(-1).astype(float).to_numpy()
    change = np.diff(mm["balance_kes"].to_numpy())
    assert np.allclose(change[same], (sign * mm["amount_kes"].to_numpy())[1:][same])
    assert set(mm["kind"]) == set(TRANSACTION_KINDS)


def test_mobile_money_covers_91_days_before_and_30_after(world: World) -> None:
    mm = with_applied_at(world.mobile_money, world)
    delta = mm["occurred_at"] - mm["applied_at"]
    assert (delta >= pd.Timedelta(days=-91)).all() and (delta < pd.Timedelta(days=30)).all()
    assert (delta >= pd.Timedelta(0)).mean() > 0.15  # post-application rows, for leakage tests
    per_day = len(mm) / N / 121
    assert 1.0 <= per_day <= 2.5


def test_true_pd_takes_no_protected_attribute(world: World) -> None:
    parameters = set(inspect.signature(true_probability_of_default).parameters)
    assert parameters == set(PD_INPUTS)
    assert not parameters & {"gender", "age", "age_band", "county", "national_id"}
    frame = world.oracle.merge(world.members[["member_id", "gender", "age"]], on="member_id")
    recomputed = true_probability_of_default(**{name: frame[name] for name in PD_INPUTS})
    np.testing.assert_allclose(recomputed, world.applications["true_pd"].to_numpy(), rtol=1e-12)
    flipped = frame.assign(
        gender=frame["gender"].map({"female": "male", "male": "female"}), age=frame["age"] + 20
    )
    again = true_probability_of_default(**{name: flipped[name] for name in PD_INPUTS})
    np.testing.assert_array_equal(again, recomputed)
    with pytest.raises(TypeError):
        true_probability_of_default(**{name: frame[name] for name in PD_INPUTS}, gender=None)  # type: ignore[call-arg]
