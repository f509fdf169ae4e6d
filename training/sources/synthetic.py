"""The synthetic world as one producer of the contract's tables, like any lender's export.

The world keeps what only a simulation can know (the true probability of default) in the loan
book's `oracle`, never in a contract table, so training on the world and training on an
imported export of it see the same columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.contract import TABLE_SPECS, LoanBook
from training.world import FLAT_INTEREST_PER_YEAR, World

#: The outcome is known when the 12-month window after the application closes.
OUTCOME_WINDOW = pd.Timedelta(days=365)


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None).astype(str).astype(object)


def _money(values: pd.Series) -> pd.Series:
    return values.astype("Float64")


def _count(values: pd.Series) -> pd.Series:
    return values.astype("Int64")


def members_table(world: World) -> pd.DataFrame:
    m = world.members
    return pd.DataFrame(
        {
            "member_id": _text(m["member_id"]),
            "sacco_id": _text(m["sacco_id"]),
            "national_id": _text(m["national_id"]),
            "phone_number": _text(m["phone_number"]),
            "gender": _text(m["gender"]),
            "age": _count(m["age"]),
            "age_band": _text(m["age_band"]),
            "county": _text(m["county"]),
            "employment_type": _text(m["employment_type"]),
            "monthly_income_kes": _money(m["monthly_income_kes"]),
            "joined_at": m["joined_at"],
        }
    )


def applications_table(world: World) -> pd.DataFrame:
    a = world.applications
    return pd.DataFrame(
        {
            "application_id": _text(a["application_id"]),
            "member_id": _text(a["member_id"]),
            "sacco_id": _text(a["sacco_id"]),
            "applied_at": a["applied_at"],
            "product": _text(a["product"]),
            "amount_kes": _money(a["amount_kes"]),
            "term_months": _count(a["term_months"]),
            "channel": _text(a["channel"]),
            "declared_monthly_income_kes": _money(a["declared_monthly_income_kes"]),
            "default_12m": _count(a["default_12m"]),
            "outcome_at": a["applied_at"] + OUTCOME_WINDOW,
        }
    )


def profile_snapshots_table(world: World) -> pd.DataFrame:
    s = world.profile_snapshots
    out = pd.DataFrame({"member_id": _text(s["member_id"]), "snapshot_at": s["snapshot_at"]})
    for name in ("tenure_months", "n_guarantors", "existing_loans", "bureau_listed"):
        out[name] = _count(s[name])
    for name in ("deposits_kes", "share_capital_kes", "existing_loan_balance_kes"):
        out[name] = _money(s[name])
    out["monthly_income_kes"] = _money(s["monthly_income_kes"])
    out["employment_type"] = _text(s["employment_type"])
    return out[list(TABLE_SPECS["profile_snapshots"].columns)]


def repayments_table(world: World) -> pd.DataFrame:
    r = world.repayments
    return pd.DataFrame(
        {
            "loan_id": _text(r["loan_id"]),
            "member_id": _text(r["member_id"]),
            "due_date": r["due_date"],
            "amount_due_kes": _money(r["amount_due_kes"]),
            "amount_paid_kes": _money(r["amount_paid_kes"]),
            "days_late": _count(r["days_late"]),
            "recorded_at": r["recorded_at"],
        }
    )


def loans_table(repayments: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The world's earlier loans as far as their instalments show them (a loan that began before
    the 24-month window is known only from the instalments inside it)."""
    grouped = repayments.groupby("loan_id", sort=True)
    first_due = grouped["due_date"].min()
    last_due = grouped["due_date"].max()
    term = grouped.size().astype(np.int64)
    instalment = grouped["amount_due_kes"].first().astype(np.float64)
    principal = np.round(instalment * term / (1.0 + FLAT_INTEREST_PER_YEAR * term / 12.0), 0)
    return pd.DataFrame(
        {
            "loan_id": first_due.index.astype(str).astype(object),
            "member_id": grouped["member_id"].first().astype(object).to_numpy(),
            "application_id": pd.Series([None] * len(term), dtype=object).to_numpy(),
            "product": pd.Series([None] * len(term), dtype=object).to_numpy(),
            "principal_kes": pd.array(principal.to_numpy(), dtype="Float64"),
            "term_months": pd.array(term.to_numpy(), dtype="Int64"),
            "disbursed_at": (first_due - pd.DateOffset(months=1)).to_numpy(),
            "status": np.where(last_due < cutoff - pd.Timedelta(days=31), "closed", "active"),
        }
    ).astype({"disbursed_at": "datetime64[ns, UTC]", "status": object})


def mobile_money_table(world: World) -> pd.DataFrame:
    t = world.mobile_money
    return pd.DataFrame(
        {
            "transaction_id": t["transaction_id"].astype(str).astype(object),
            "member_id": _text(t["member_id"]),
            "occurred_at": t["occurred_at"],
            "kind": _text(t["kind"]),
            "amount_kes": _money(t["amount_kes"]),
            "balance_kes": _money(t["balance_kes"]),
        }
    )


def loan_book_from_world(world: World, *, name: str = "synthetic") -> LoanBook:
    """The world's contract tables, its oracle PD per application, and a cut-off after every
    record (the end of the last outcome window)."""
    applications = applications_table(world)
    repayments = repayments_table(world)
    stamps = [
        applications["outcome_at"].max(),
        world.mobile_money["occurred_at"].max(),
        world.profile_snapshots["snapshot_at"].max(),
        repayments["recorded_at"].max(),
    ]
    cutoff = max(pd.Timestamp(s) for s in stamps if pd.notna(s)).ceil("D")
    tables = {
        "members": members_table(world),
        "applications": applications,
        "profile_snapshots": profile_snapshots_table(world),
        "loans": loans_table(repayments, cutoff),
        "repayments": repayments,
        "mobile_money": mobile_money_table(world),
    }
    oracle = pd.DataFrame(
        {
            "application_id": applications["application_id"],
            "true_pd": world.applications["true_pd"].astype(np.float64).to_numpy(),
        }
    )
    return LoanBook(
        tables=tables,
        source=name,
        cutoff=cutoff,
        oracle=oracle,
        meta={"world_seed": world.seed, "world_fingerprint": world.fingerprint()},
    )
