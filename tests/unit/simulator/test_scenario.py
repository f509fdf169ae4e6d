"""Which applications a run sends, and the history windows that go before them."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from services.common.features import MOBILE_MONEY_HISTORY_DAYS
from simulator.scenario import (
    SHOCK_INCOME_DROP,
    WIRE_CHANNELS,
    build_scenario,
    choose_applications,
    repayment_id,
    shocked,
)
from training.contract import LoanBook


def test_selection_is_deterministic_and_run_scoped(small_book: LoanBook) -> None:
    first = choose_applications(small_book, 40, "run1")
    again = choose_applications(small_book, 40, "run1")
    other_run = choose_applications(small_book, 40, "run2")

    assert first == again
    assert [a.source_application_id for a in other_run] == [a.source_application_id for a in first]
    assert all(a.application_id == f"run1-{a.source_application_id}" for a in first)
    assert all(a.application_id.startswith("run2-") for a in other_run)
    assert len({a.application_id for a in first}) == 40
    # a spread over the book, sent in applied_at order
    assert [a.applied_at for a in first] == sorted(a.applied_at for a in first)
    assert {a.source_application_id for a in first} != set(
        small_book.applications["application_id"].head(40)
    )


def test_applications_carry_the_book_rows_and_national_ids(small_book: LoanBook) -> None:
    apps = small_book.applications.set_index("application_id")
    national = small_book.members.set_index("member_id")["national_id"]
    for a in choose_applications(small_book, 25, "r"):
        row = apps.loc[a.source_application_id]
        assert a.member_id == row["member_id"]
        assert a.amount_kes == row["amount_kes"]
        assert a.term_months == row["term_months"]
        assert a.product == row["product"] and a.channel == row["channel"]
        assert pd.Timestamp(a.applied_at) == row["applied_at"]
        assert a.national_id == national[a.member_id]


def test_more_applications_than_the_book_cycles_and_dedupes_members(small_book: LoanBook) -> None:
    n_book = len(small_book.applications)
    scenario = build_scenario(small_book, n_book + 50, "big")

    ids = [a.application_id for a in scenario.applications]
    assert len(ids) == len(set(ids)) == n_book + 50
    assert sum(i.endswith("-1") for i in ids) == 50
    assert len(scenario.members) == small_book.applications["member_id"].nunique()
    assert scenario.transactions["transaction_id"].is_unique
    assert scenario.repayments["repayment_id"].is_unique
    # the repeated members add no history
    once = build_scenario(small_book, n_book, "big")
    assert len(once.transactions) == len(scenario.transactions)
    assert len(once.repayments) == len(scenario.repayments)


def test_history_is_exactly_the_feature_window_before_each_application(
    small_book: LoanBook,
) -> None:
    scenario = build_scenario(small_book, 60, "w")
    applied = {a.member_id: pd.Timestamp(a.applied_at) for a in scenario.applications}
    window = timedelta(days=MOBILE_MONEY_HISTORY_DAYS)

    tx = scenario.transactions
    as_of = tx["member_id"].astype(str).map(applied)
    assert len(tx) > 0
    assert (tx["occurred_at"] < as_of).all(), "an event at or after applied_at was sent"
    assert (tx["occurred_at"] >= as_of - window).all(), "an event older than the window was sent"

    # and nothing in the window is missing
    book_tx = small_book.mobile_money.astype({"member_id": str})
    book_tx = book_tx[book_tx["member_id"].isin(applied)]
    book_as_of = book_tx["member_id"].map(applied)
    expected = book_tx[
        (book_tx["occurred_at"] < book_as_of) & (book_tx["occurred_at"] >= book_as_of - window)
    ]
    assert set(tx["transaction_id"]) == set(expected["transaction_id"])
    assert set(tx["member_id"].astype(str)) <= set(applied)

    rp = scenario.repayments
    assert len(rp) > 0
    assert (rp["recorded_at"] < rp["member_id"].astype(str).map(applied)).all()
    book_rp = small_book.repayments.astype({"member_id": str})
    assert len(rp) == int(book_rp["member_id"].isin(applied).sum())


def test_repayment_ids_are_stable_and_unique(small_book: LoanBook) -> None:
    first = build_scenario(small_book, 80, "a").repayments
    second = build_scenario(small_book, 80, "b").repayments

    assert first["repayment_id"].tolist() == second["repayment_id"].tolist()
    assert first["repayment_id"].is_unique
    row = first.iloc[0]
    assert row["repayment_id"] == repayment_id(row["loan_id"], row["due_date"])
    assert row["repayment_id"] == f"{row['loan_id']}:{row['due_date']:%Y%m%d}"


def test_zero_applications_send_nothing(small_book: LoanBook) -> None:
    scenario = build_scenario(small_book, 0, "none")
    assert scenario.applications == []
    assert scenario.transactions.empty and scenario.repayments.empty


def test_a_member_with_two_applications_gets_both_windows_once(
    two_application_book: LoanBook,
) -> None:
    apps = two_application_book.applications
    twice = apps["member_id"].value_counts()
    member = str(twice.index[0])
    assert twice.iloc[0] == 2 and (twice.iloc[1:] == 1).all()
    scenario = build_scenario(two_application_book, len(apps), "two")

    mine = [a for a in scenario.applications if a.member_id == member]
    assert len(mine) == 2 and mine[0].applied_at < mine[1].applied_at
    first, last = (pd.Timestamp(a.applied_at) for a in mine)
    window = timedelta(days=MOBILE_MONEY_HISTORY_DAYS)

    tx = scenario.transactions[scenario.transactions["member_id"] == member]
    book_tx = two_application_book.mobile_money
    book_tx = book_tx[book_tx["member_id"] == member]
    in_first = (book_tx["occurred_at"] >= first - window) & (book_tx["occurred_at"] < first)
    in_last = (book_tx["occurred_at"] >= last - window) & (book_tx["occurred_at"] < last)
    assert in_first.any() and (in_first & in_last).any() and (in_last & ~in_first).any()
    assert set(tx["transaction_id"]) == set(book_tx.loc[in_first | in_last, "transaction_id"])
    assert tx["transaction_id"].is_unique

    rp = scenario.repayments[scenario.repayments["member_id"] == member]
    book_rp = two_application_book.repayments
    book_rp = book_rp[book_rp["member_id"] == member]
    assert len(rp) == int((book_rp["recorded_at"] < last).sum()) > 0
    assert rp["repayment_id"].is_unique


def test_a_book_with_empty_optional_columns_and_no_history(sparse_book: LoanBook) -> None:
    scenario = build_scenario(sparse_book, 40, "sparse")

    assert len(scenario.applications) == 40
    assert scenario.transactions.empty and scenario.repayments.empty
    assert all(a.national_id is None for a in scenario.applications)
    assert all(a.declared_monthly_income_kes is None for a in scenario.applications)
    channels = {a.channel for a in scenario.applications}
    assert channels == {None, "ussd"} and channels - {None} <= set(WIRE_CHANNELS)


def test_a_shock_lowers_inflows_balances_and_declared_incomes_and_nothing_else(
    small_book: LoanBook,
) -> None:
    base = build_scenario(small_book, 60, "s")
    half = shocked(base, 1.0)  # a full shock: incomes fall by SHOCK_INCOME_DROP
    inflow = base.transactions["kind"].astype(str) == "inflow"
    assert inflow.any()
    factor = 1.0 - SHOCK_INCOME_DROP
    assert half.transactions.loc[inflow, "amount_kes"].tolist() == pytest.approx(
        (base.transactions.loc[inflow, "amount_kes"].astype(float) * factor).tolist(), abs=0.01
    )
    assert half.transactions.loc[~inflow, "amount_kes"].tolist() == (
        base.transactions.loc[~inflow, "amount_kes"].tolist()
    )
    assert (
        half.transactions["transaction_id"].tolist() == base.transactions["transaction_id"].tolist()
    )
    declared = [
        (a.declared_monthly_income_kes, b.declared_monthly_income_kes)
        for a, b in zip(base.applications, half.applications, strict=True)
        if a.declared_monthly_income_kes is not None
    ]
    assert declared and all(b == pytest.approx(a * factor, abs=0.01) for a, b in declared)
    assert half.repayments.equals(base.repayments)  # lateness is the loans' part of the shock
    assert shocked(base, 0.0) is base
    with pytest.raises(ValueError, match="between 0 and 1"):
        shocked(base, 1.5)
