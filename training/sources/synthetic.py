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


def contract_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A world table in the contract's columns and types: ids and categories as text, counts
    as Int64, money as Float64, instants as they are (UTC already)."""
    out: dict[str, pd.Series] = {}
    for column, spec in TABLE_SPECS[name].columns.items():
        values = frame[column]
        dtype = str(spec.dtype)
        if dtype in ("Int64", "Float64"):
            out[column] = values.astype(dtype)
        elif "datetime" in dtype:
            out[column] = values
        else:
            out[column] = _text(values)
    return pd.DataFrame(out)


def _text(values: pd.Series) -> pd.Series:
    """Values as text; a category's text is made once and shared by its rows (ten million
    member ids as separate strings would take seconds and gigabytes)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(str).astype(object)
    codes = values.cat.codes.to_numpy()
    names = np.append(values.cat.categories.astype(str).to_numpy(dtype=object), "nan")
    return pd.Series(names[codes], index=values.index, dtype=object)  # code -1 (missing): "nan"


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


def world_cutoff(world: World) -> pd.Timestamp:
    """The end of the last outcome window: after every record of the world (or of a part)."""
    stamps = [
        world.applications["applied_at"].max() + OUTCOME_WINDOW,
        world.mobile_money["occurred_at"].max(),
        world.profile_snapshots["snapshot_at"].max(),
        world.repayments["recorded_at"].max(),
    ]
    return max(pd.Timestamp(s) for s in stamps if pd.notna(s)).ceil("D")


def loan_book_from_world(
    world: World, *, name: str = "synthetic", cutoff: pd.Timestamp | None = None
) -> LoanBook:
    """The world's contract tables, its oracle PD per application, and a cut-off after every
    record (the end of the last outcome window; a part of a world takes the whole world's)."""
    world_apps = world.applications
    applications = contract_table(
        "applications", world_apps.assign(outcome_at=world_apps["applied_at"] + OUTCOME_WINDOW)
    )
    repayments = contract_table("repayments", world.repayments)
    cutoff = world_cutoff(world) if cutoff is None else cutoff
    tables = {
        "members": contract_table("members", world.members),
        "applications": applications,
        "profile_snapshots": contract_table("profile_snapshots", world.profile_snapshots),
        "loans": loans_table(repayments, cutoff),
        "repayments": repayments,
        "mobile_money": contract_table("mobile_money", world.mobile_money),
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
