"""Loan books shared by the simulator's unit tests, all from one small seeded synthetic world.

`small_book` is the world as the synthetic source gives it; `sparse_book` is what a lender's
import can look like (every optional column empty, blank or outside the wire's vocabulary, only
the required tables, no world seed); `two_application_book` gives one member a second application.
Each is validated against the data contract, so the simulator is tested on legal books only.
"""

from __future__ import annotations

import pandas as pd
import pytest

from training.contract import TABLE_SPECS, LoanBook
from training.sources.synthetic import loan_book_from_world
from training.world import World, generate_world

SECOND_APPLICATION_AFTER = pd.Timedelta(days=40)


def validated(book: LoanBook) -> LoanBook:
    for name, table in book.tables.items():
        TABLE_SPECS[name].schema.validate(table)
    return book


@pytest.fixture(scope="session")
def small_world() -> World:
    return generate_world(300, seed=5)


@pytest.fixture(scope="session")
def small_book(small_world: World) -> LoanBook:
    return validated(loan_book_from_world(small_world))


@pytest.fixture(scope="session")
def sparse_book(small_book: LoanBook) -> LoanBook:
    blank_or_none = pd.Series([None, ""] * len(small_book.members), dtype=object)
    members = small_book.members.assign(
        national_id=blank_or_none.iloc[: len(small_book.members)].to_numpy(), phone_number=None
    )
    apps = small_book.applications.copy()
    channels = pd.Series([None, "agent", "other", "ussd"] * len(apps), dtype=object)
    apps["channel"] = channels.iloc[: len(apps)].to_numpy()
    apps["declared_monthly_income_kes"] = pd.array([None] * len(apps), dtype="Float64")
    return validated(
        LoanBook(
            tables={"members": members, "applications": apps},
            source="csv:sparse-lender",
            cutoff=small_book.cutoff,
        )
    )


@pytest.fixture(scope="session")
def two_application_book(small_book: LoanBook) -> LoanBook:
    """The first member with both kinds of history applies again 40 days after their first
    application, so the two feature windows overlap."""
    with_both = set(small_book.repayments["member_id"]) & set(small_book.mobile_money["member_id"])
    apps = small_book.applications
    first = apps[apps["member_id"].isin(with_both)].iloc[0]
    second = first.copy()
    second["application_id"] = f"{first['application_id']}-again"
    second["applied_at"] = first["applied_at"] + SECOND_APPLICATION_AFTER
    second["outcome_at"] = first["outcome_at"] + SECOND_APPLICATION_AFTER
    more = pd.concat([apps, second.to_frame().T.astype(apps.dtypes.to_dict())], ignore_index=True)
    return validated(
        LoanBook(
            tables={**small_book.tables, "applications": more},
            source=small_book.source,
            cutoff=small_book.cutoff + SECOND_APPLICATION_AFTER,
            oracle=small_book.oracle,
            meta=small_book.meta,
        )
    )
