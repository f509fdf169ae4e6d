"""What a run sends, chosen from the synthetic world: pure and deterministic, so it is testable.

A scenario is N applications (with run-scoped ids, because decision ids derive from application
ids) and the history their members need before they can be scored: the mobile-money transactions
of the feature window before each application, and the repayments recorded before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from services.common.features import MOBILE_MONEY_HISTORY_DAYS
from training.world import World

HISTORY_WINDOW = timedelta(days=MOBILE_MONEY_HISTORY_DAYS)
SELECTION_SEED = 20_250_101  # fixed: the same world and N always pick the same applications


@dataclass(frozen=True)
class ApplicationRequest:
    """One loan application as core banking or a partner submits it."""

    application_id: str  # run-scoped
    source_application_id: str  # the world's id
    member_id: str
    sacco_id: str
    product: str
    amount_kes: float
    term_months: int
    applied_at: datetime
    channel: str
    declared_monthly_income_kes: float
    national_id: str


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
    """Run-scoped id; a world application sent twice in one run (N > world) gets a cycle suffix."""
    return f"{run_id}-{source_id}" if cycle == 0 else f"{run_id}-{source_id}-{cycle}"


def repayment_id(loan_id: str, due_date: datetime) -> str:
    """Stable id of one instalment (the world has none): loan and due month, as world_events."""
    return f"{loan_id}:{due_date:%Y%m}"


def choose_applications(world: World, n: int, run_id: str) -> list[ApplicationRequest]:
    """N applications in a fixed pseudo-random order, cycling through the world when N exceeds
    it, then sent in applied_at order within each cycle."""
    if n < 0:
        raise ValueError("the number of applications cannot be negative")
    table = world.applications
    if n == 0 or table.empty:
        return []
    order = np.random.default_rng(SELECTION_SEED).permutation(len(table))
    picks = np.arange(n)
    rows = table.iloc[order[picks % len(table)]].reset_index(drop=True)
    rows["cycle"] = picks // len(table)
    rows = rows.sort_values(["cycle", "applied_at", "application_id"], kind="stable")
    national_ids = dict(zip(world.members["member_id"], world.members["national_id"], strict=True))
    return [
        ApplicationRequest(
            application_id=run_application_id(run_id, str(r.application_id), int(r.cycle)),
            source_application_id=str(r.application_id),
            member_id=str(r.member_id),
            sacco_id=str(r.sacco_id),
            product=str(r.product),
            amount_kes=float(r.amount_kes),
            term_months=int(r.term_months),
            applied_at=pd.Timestamp(r.applied_at).to_pydatetime().astimezone(UTC),
            channel=str(r.channel),
            declared_monthly_income_kes=float(r.declared_monthly_income_kes),
            national_id=str(national_ids[str(r.member_id)]),
        )
        for r in rows.itertuples(index=False)
    ]


def _as_of_table(applications: list[ApplicationRequest]) -> pd.DataFrame:
    """One row per distinct (member, applied_at): a member chosen twice is covered once."""
    frame = pd.DataFrame(
        {
            "member_id": [a.member_id for a in applications],
            "as_of": pd.to_datetime([a.applied_at for a in applications], utc=True),
        }
    )
    return frame.drop_duplicates(ignore_index=True)


def mobile_money_history(
    mobile_money: pd.DataFrame, applications: list[ApplicationRequest]
) -> pd.DataFrame:
    """Each member's transactions in [applied_at - window, applied_at): what the features read."""
    as_of = _as_of_table(applications)
    columns = list(mobile_money.columns)
    if as_of.empty:
        return mobile_money.iloc[0:0]
    rows = mobile_money[mobile_money["member_id"].isin(as_of["member_id"].unique())]
    rows = rows.astype({"member_id": str}).merge(as_of, on="member_id")
    keep = (rows["occurred_at"] < rows["as_of"]) & (
        rows["occurred_at"] >= rows["as_of"] - HISTORY_WINDOW
    )
    rows = rows.loc[keep, columns].drop_duplicates("transaction_id")
    return rows.sort_values(["member_id", "occurred_at", "transaction_id"], ignore_index=True)


def repayment_history(
    repayments: pd.DataFrame, applications: list[ApplicationRequest]
) -> pd.DataFrame:
    """Each member's repayments recorded before the application, with a stable repayment id."""
    as_of = _as_of_table(applications)
    columns = list(repayments.columns)
    if as_of.empty:
        return repayments.iloc[0:0].assign(repayment_id=pd.Series(dtype=str))
    rows = repayments[repayments["member_id"].isin(as_of["member_id"].unique())]
    rows = rows.astype({"member_id": str, "loan_id": str}).merge(as_of, on="member_id")
    rows = rows.loc[rows["recorded_at"] < rows["as_of"], columns]
    rows = rows.assign(
        repayment_id=[
            repayment_id(loan, due.to_pydatetime())
            for loan, due in zip(rows["loan_id"], rows["due_date"], strict=True)
        ]
    ).drop_duplicates("repayment_id")
    return rows.sort_values(["recorded_at", "repayment_id"], ignore_index=True)


def build_scenario(world: World, n_applications: int, run_id: str) -> Scenario:
    applications = choose_applications(world, n_applications, run_id)
    return Scenario(
        run_id=run_id,
        applications=applications,
        transactions=mobile_money_history(world.mobile_money, applications),
        repayments=repayment_history(world.repayments, applications),
    )
