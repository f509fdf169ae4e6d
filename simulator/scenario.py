"""What a run sends, chosen from a loan book: pure and deterministic, so it is testable.

A scenario is N applications (with run-scoped ids, because decision ids derive from application
ids) and the history their members need before they can be scored: the mobile-money transactions
of the feature window before each application, and the repayments recorded before it.

A member may have several applications: the history is the union of their windows, each row
sent once, all before the first application goes out (as a live system that has caught up would
hold it). A book without mobile money or repayments simply has no history of that kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from services.common.features import MOBILE_MONEY_HISTORY_DAYS
from services.common.vocabulary import CHANNELS
from training.contract import LoanBook

HISTORY_WINDOW = timedelta(days=MOBILE_MONEY_HISTORY_DAYS)
SELECTION_SEED = 20_250_101  # fixed: the same book and N always pick the same applications
#: The channels the wire (protos and the gateway's schema) can name. The contract also allows
#: `agent` and `other`; those and an empty channel travel as unspecified (see `wire_channel`).
WIRE_CHANNELS = CHANNELS.names


@dataclass(frozen=True)
class ApplicationRequest:
    """One loan application as core banking or a partner submits it.

    The optional fields are None where the loan book has no value (or, for the channel, none the
    wire can name); the senders leave them out (REST) or send the proto default (Kafka).
    """

    application_id: str  # run-scoped
    source_application_id: str  # the loan book's id
    member_id: str
    sacco_id: str
    product: str
    amount_kes: float
    term_months: int
    applied_at: datetime
    channel: str | None
    declared_monthly_income_kes: float | None
    national_id: str | None
    #: columns of the lender's own table, and the member's protected attributes (gender, age
    #: band) that core banking sends for fairness oversight; no Alama model reads those
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Scenario:
    run_id: str
    applications: list[ApplicationRequest]  # in send order
    transactions: pd.DataFrame  # mobile-money history, sorted by member, time, transaction id
    repayments: pd.DataFrame  # repayment history with a `repayment_id`, sorted by recorded_at

    @property
    def members(self) -> list[str]:
        return sorted({a.member_id for a in self.applications})


def run_application_id(run_id: str, source_id: str, cycle: int) -> str:
    """Run-scoped id; a book application sent twice in one run (N > book) gets a cycle suffix."""
    return f"{run_id}-{source_id}" if cycle == 0 else f"{run_id}-{source_id}-{cycle}"


def repayment_id(loan_id: str, due_date: datetime) -> str:
    """Stable id of one instalment: the contract's instalment key, loan and due day (a weekly
    schedule has several instalments a month, so the month alone would merge them)."""
    return f"{loan_id}:{due_date:%Y%m%d}"


def wire_channel(channel: object) -> str | None:
    """The book's channel when the wire can name it, else None (unspecified)."""
    return channel if isinstance(channel, str) and channel in WIRE_CHANNELS else None


def _missing(value: object) -> bool:
    """An empty cell of a nullable contract column (None, pd.NA, or a float NaN)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _optional_text(value: object) -> str | None:
    """The text, or None when the cell is empty or blank (the gateway refuses an empty id)."""
    return None if _missing(value) or not str(value).strip() else str(value)


def _optional_float(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def national_ids(book: LoanBook) -> dict[str, str | None]:
    """Member id -> national id (None where the book has none)."""
    members = book.members
    return {
        str(member): _optional_text(national)
        for member, national in zip(
            members["member_id"].tolist(), members["national_id"].tolist(), strict=True
        )
    }


#: the protected attributes core banking sends with an application, for the console's fairness
#: oversight of live decisions (never a model input: training drops them, scoring ignores them)
OVERSIGHT_ATTRIBUTES = ("gender", "age_band")


def demographics(book: LoanBook) -> dict[str, dict[str, str]]:
    """Member id -> the protected attributes the book holds (empty where it holds none)."""
    members = book.members
    present = [c for c in OVERSIGHT_ATTRIBUTES if c in members.columns]
    out: dict[str, dict[str, str]] = {}
    for row in members[["member_id", *present]].itertuples(index=False):
        values = {c: str(v) for c, v in zip(present, row[1:], strict=True) if _optional_text(v)}
        out[str(row[0])] = values
    return out


def application_requests(
    rows: pd.DataFrame,
    ids: list[str],
    national: Mapping[str, str | None],
    attributes: Mapping[str, Mapping[str, str]] | None = None,
) -> list[ApplicationRequest]:
    """Contract application rows as requests, the i-th sent under `ids[i]`."""
    columns = (
        "application_id",
        "member_id",
        "sacco_id",
        "product",
        "amount_kes",
        "term_months",
        "applied_at",
        "channel",
        "declared_monthly_income_kes",
    )
    values: list[list[Any]] = [rows[c].tolist() for c in columns]
    return [
        ApplicationRequest(
            application_id=run_id,
            source_application_id=str(source),
            member_id=str(member),
            sacco_id=str(sacco),
            product=str(product),
            amount_kes=float(amount),
            term_months=int(term),
            applied_at=pd.Timestamp(applied).to_pydatetime().astimezone(UTC),
            channel=wire_channel(channel),
            declared_monthly_income_kes=_optional_float(income),
            national_id=national.get(str(member)),
            attributes=(attributes or {}).get(str(member)) or None,
        )
        for run_id, source, member, sacco, product, amount, term, applied, channel, income in zip(
            ids, *values, strict=True
        )
    ]


def choose_applications(book: LoanBook, n: int, run_id: str) -> list[ApplicationRequest]:
    """N applications in a fixed pseudo-random order, cycling through the book when N exceeds
    it, then sent in applied_at order within each cycle."""
    if n < 0:
        raise ValueError("the number of applications cannot be negative")
    table = book.applications
    if n == 0 or table.empty:
        return []
    order = np.random.default_rng(SELECTION_SEED).permutation(len(table))
    picks = np.arange(n)
    rows = table.iloc[order[picks % len(table)]].reset_index(drop=True)
    rows["cycle"] = picks // len(table)
    rows = rows.sort_values(["cycle", "applied_at", "application_id"], kind="stable")
    ids = [
        run_application_id(run_id, str(source), int(cycle))
        for source, cycle in zip(rows["application_id"], rows["cycle"], strict=True)
    ]
    return application_requests(rows, ids, national_ids(book), demographics(book))


def _as_of_table(applications: list[ApplicationRequest]) -> pd.DataFrame:
    """One row per distinct (member, applied_at): a member chosen twice is covered once."""
    frame = pd.DataFrame(
        {
            "member_id": [a.member_id for a in applications],
            "as_of": pd.to_datetime([a.applied_at for a in applications], utc=True),
        }
    )
    return frame.drop_duplicates(ignore_index=True)


def _utc_column(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def mobile_money_history(
    mobile_money: pd.DataFrame, applications: list[ApplicationRequest]
) -> pd.DataFrame:
    """Each member's transactions in [applied_at - window, applied_at): what the features read."""
    as_of = _as_of_table(applications)
    columns = list(mobile_money.columns)
    if as_of.empty or mobile_money.empty:
        return mobile_money.iloc[0:0]
    rows = mobile_money[mobile_money["member_id"].astype(str).isin(as_of["member_id"].unique())]
    rows = rows.astype({"member_id": str}).merge(as_of, on="member_id")
    occurred = _utc_column(rows["occurred_at"])
    keep = (occurred < rows["as_of"]) & (occurred >= rows["as_of"] - HISTORY_WINDOW)
    rows = rows.loc[keep, columns].drop_duplicates("transaction_id")
    return rows.sort_values(["member_id", "occurred_at", "transaction_id"], ignore_index=True)


def repayment_history(
    repayments: pd.DataFrame, applications: list[ApplicationRequest]
) -> pd.DataFrame:
    """Each member's repayments recorded before the application, with a stable repayment id."""
    as_of = _as_of_table(applications)
    columns = list(repayments.columns)
    if as_of.empty or repayments.empty:
        return repayments.iloc[0:0].assign(repayment_id=pd.Series(dtype=object))
    rows = repayments[repayments["member_id"].astype(str).isin(as_of["member_id"].unique())]
    rows = rows.astype({"member_id": str, "loan_id": str}).merge(as_of, on="member_id")
    rows = rows.loc[_utc_column(rows["recorded_at"]) < rows["as_of"], columns]
    rows = rows.assign(
        repayment_id=[
            repayment_id(loan, pd.Timestamp(due).to_pydatetime())
            for loan, due in zip(rows["loan_id"], rows["due_date"], strict=True)
        ]
    ).drop_duplicates("repayment_id")
    return rows.sort_values(["recorded_at", "repayment_id"], ignore_index=True)


def build_scenario(book: LoanBook, n_applications: int, run_id: str) -> Scenario:
    applications = choose_applications(book, n_applications, run_id)
    return Scenario(
        run_id=run_id,
        applications=applications,
        transactions=mobile_money_history(book.mobile_money, applications),
        repayments=repayment_history(book.repayments, applications),
    )


#: under a full shock (1.0) wallet inflows, balances and declared incomes fall by this share; the
#: loans' lateness and defaults are `simulator.loans`'s part of the same shock
SHOCK_INCOME_DROP = 0.5


def shocked(scenario: Scenario, shock: float) -> Scenario:
    """The scenario in an economic shock: members earn less (every inflow, and so every
    balance, and the income declared on the form scaled down by ``shock * SHOCK_INCOME_DROP``),
    deterministically, so a baseline and a shocked run differ by the shock alone."""
    if not 0.0 <= shock <= 1.0:
        raise ValueError(f"the shock is a share between 0 and 1, got {shock}")
    if shock == 0.0:
        return scenario
    factor = 1.0 - shock * SHOCK_INCOME_DROP
    transactions = scenario.transactions.copy()
    if not transactions.empty:
        inflow = transactions["kind"].astype(str) == "inflow"
        transactions.loc[inflow, "amount_kes"] = (
            transactions.loc[inflow, "amount_kes"].astype(float) * factor
        ).round(2)
        if "balance_kes" in transactions.columns:
            transactions["balance_kes"] = (
                transactions["balance_kes"].astype(float) * factor
            ).round(2)
    applications = [
        a
        if a.declared_monthly_income_kes is None
        else replace(
            a, declared_monthly_income_kes=round(a.declared_monthly_income_kes * factor, 2)
        )
        for a in scenario.applications
    ]
    return Scenario(scenario.run_id, applications, transactions, scenario.repayments)
