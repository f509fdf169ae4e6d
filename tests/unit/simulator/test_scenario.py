"""Which applications a run sends, and the history windows that go before them."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from services.common.features import MOBILE_MONEY_HISTORY_DAYS
from services.simulator.scenario import build_scenario, choose_applications, repayment_id
from training.world import World


def test_selection_is_deterministic_and_run_scoped(small_world: World) -> None:
    first = choose_applications(small_world, 40, "run1")
    again = choose_applications(small_world, 40, "run1")
    other_run = choose_applications(small_world, 40, "run2")

    assert first == again
    assert [a.source_application_id for a in other_run] == [a.source_application_id for a in first]
    assert all(a.application_id == f"run1-{a.source_application_id}" for a in first)
    assert all(a.application_id.startswith("run2-") for a in other_run)
    assert len({a.application_id for a in first}) == 40
    # a spread over the world, sent in applied_at order
    assert [a.applied_at for a in first] == sorted(a.applied_at for a in first)
    assert {a.source_application_id for a in first} != set(
        small_world.applications["application_id"].head(40)
    )


def test_applications_carry_the_world_rows_and_national_ids(small_world: World) -> None:
    apps = small_world.applications.set_index("application_id")
    national = small_world.members.set_index("member_id")["national_id"]
    for a in choose_applications(small_world, 25, "r"):
        row = apps.loc[a.source_application_id]
        assert a.member_id == row["member_id"]
        assert a.amount_kes == row["amount_kes"]
        assert a.term_months == row["term_months"]
        assert a.product == row["product"] and a.channel == row["channel"]
        assert pd.Timestamp(a.applied_at) == row["applied_at"]
        assert a.national_id == national[a.member_id]


def test_more_applications_than_the_world_cycles_and_dedupes_members(small_world: World) -> None:
    n_world = len(small_world.applications)
    scenario = build_scenario(small_world, n_world + 50, "big")

    ids = [a.application_id for a in scenario.applications]
    assert len(ids) == len(set(ids)) == n_world + 50
    assert sum(i.endswith("-1") for i in ids) == 50
    assert len(scenario.members) == n_world
    assert scenario.transactions["transaction_id"].is_unique
    assert scenario.repayments["repayment_id"].is_unique
    # the repeated members add no history
    once = build_scenario(small_world, n_world, "big")
    assert len(once.transactions) == len(scenario.transactions)
    assert len(once.repayments) == len(scenario.repayments)


def test_history_is_exactly_the_feature_window_before_each_application(
    small_world: World,
) -> None:
    scenario = build_scenario(small_world, 60, "w")
    applied = {a.member_id: pd.Timestamp(a.applied_at) for a in scenario.applications}
    window = timedelta(days=MOBILE_MONEY_HISTORY_DAYS)

    tx = scenario.transactions
    as_of = tx["member_id"].astype(str).map(applied)
    assert len(tx) > 0
    assert (tx["occurred_at"] < as_of).all(), "an event at or after applied_at was sent"
    assert (tx["occurred_at"] >= as_of - window).all(), "an event older than the window was sent"

    # and nothing in the window is missing
    world_tx = small_world.mobile_money.astype({"member_id": str})
    world_tx = world_tx[world_tx["member_id"].isin(applied)]
    world_as_of = world_tx["member_id"].map(applied)
    expected = world_tx[
        (world_tx["occurred_at"] < world_as_of) & (world_tx["occurred_at"] >= world_as_of - window)
    ]
    assert set(tx["transaction_id"]) == set(expected["transaction_id"])
    assert set(tx["member_id"].astype(str)) <= set(applied)

    rp = scenario.repayments
    assert len(rp) > 0
    assert (rp["recorded_at"] < rp["member_id"].astype(str).map(applied)).all()
    world_rp = small_world.repayments.astype({"member_id": str})
    assert len(rp) == int(world_rp["member_id"].isin(applied).sum())


def test_repayment_ids_are_stable_and_unique(small_world: World) -> None:
    first = build_scenario(small_world, 80, "a").repayments
    second = build_scenario(small_world, 80, "b").repayments

    assert first["repayment_id"].tolist() == second["repayment_id"].tolist()
    assert first["repayment_id"].is_unique
    row = first.iloc[0]
    assert row["repayment_id"] == repayment_id(row["loan_id"], row["due_date"])
    assert row["repayment_id"] == f"{row['loan_id']}:{row['due_date']:%Y%m}"


def test_zero_applications_send_nothing(small_world: World) -> None:
    scenario = build_scenario(small_world, 0, "none")
    assert scenario.applications == []
    assert scenario.transactions.empty and scenario.repayments.empty
