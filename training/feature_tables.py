"""Load a loan book into Feast and take training sets out of it, point-in-time.

The offline tables hold feature snapshots computed by `services.common.features` at several
instants per member (before, at and after the application), so the point-in-time join has later
values to ignore; the training set comes only from `get_historical_features`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import timedelta

import asyncpg
import numpy as np
import pandas as pd
from rich.progress import track

from services.common import features as F
from services.common.feast_config import (
    FEATURE_REPO,
    FEATURE_SERVICE,
    REPO_ROOT,
    feast_environment,
    open_feature_store,
)
from services.common.settings import InfraSettings
from training.contract import LoanBook
from training.library_output import into_log

SNAPSHOT_OFFSETS = (timedelta(days=-30), timedelta(0), timedelta(days=14))
ENTITY_COLUMNS = ("application_id", "member_id", "amount_kes", "term_months", "product")


def snapshot_times(
    applied_at: pd.Series, offsets: Iterable[timedelta] = SNAPSHOT_OFFSETS
) -> list[pd.Series]:
    return [applied_at + offset for offset in offsets]


def feature_input(table: pd.DataFrame) -> pd.DataFrame:
    """A contract table as the feature functions take it: numbers as float64 (NaN where the
    source left them empty) and member ids as categories (millions of rows join fast)."""
    out = table.copy()
    for name, column in out.items():
        if isinstance(column.dtype, pd.Int64Dtype | pd.Float64Dtype):
            out[name] = column.astype("float64")
    if "member_id" in out.columns and len(out) > 100_000:
        out["member_id"] = out["member_id"].astype("category")
    return out


def application_times(book: LoanBook) -> list[pd.Series]:
    """Snapshot instants around every application, one member per series (the feature functions
    take one as-of per member), so members who applied several times get each application's."""
    apps = book.applications
    rank = apps.groupby("member_id", sort=False).cumcount().to_numpy()
    times: list[pd.Series] = []
    for r in range(int(rank.max()) + 1 if len(apps) else 0):
        sub = apps[rank == r]
        applied_at = pd.Series(
            pd.to_datetime(sub["applied_at"], utc=True).to_numpy(),
            index=pd.Index(sub["member_id"].astype(str)),
        )
        times.extend(snapshot_times(applied_at))
    return times


def profile_snapshots(book: LoanBook) -> pd.DataFrame:
    """The book's account snapshots; a source without them (no savings or share data, such as
    Home Credit) gets one per application from what the members table knows (income,
    employment, tenure), the rest left missing."""
    if book.has("profile_snapshots"):
        return book.profile_snapshots
    apps = book.applications
    members = book.members.set_index("member_id")
    known = members.loc[apps["member_id"]]
    at = pd.to_datetime(apps["applied_at"], utc=True) - pd.Timedelta(seconds=1)
    joined = pd.to_datetime(known["joined_at"], utc=True).to_numpy()
    tenure = (at.to_numpy() - joined) / np.timedelta64(1, "D") / 30.4375
    missing = pd.array([pd.NA] * len(apps), dtype="Float64")
    return pd.DataFrame(
        {
            "member_id": apps["member_id"].to_numpy(),
            "snapshot_at": at.to_numpy(),
            "tenure_months": np.maximum(np.floor(tenure), 0.0),
            "deposits_kes": missing,
            "share_capital_kes": missing,
            "n_guarantors": missing,
            "existing_loans": missing,
            "existing_loan_balance_kes": missing,
            "bureau_listed": missing,
            "monthly_income_kes": known["monthly_income_kes"].to_numpy(),
            "employment_type": known["employment_type"].to_numpy(),
        }
    ).astype({"snapshot_at": "datetime64[ns, UTC]"})


def build_tables(book: LoanBook) -> dict[str, pd.DataFrame]:
    """The offline tables, each with member_id and event_timestamp; a table the source lacks
    gives its features' empty value (zeros, NaN) so every feature view has its table."""
    # one profile row per snapshot, as it was known at that snapshot's time
    snaps = feature_input(profile_snapshots(book))
    rank = snaps.groupby("member_id", observed=True).cumcount().to_numpy()
    profile_rows = []
    for r in track(range(int(rank.max()) + 1), description="profile snapshots"):
        sub = snaps[rank == r]
        as_of = pd.Series(
            pd.to_datetime(sub["snapshot_at"], utc=True).to_numpy(),
            index=pd.Index(sub["member_id"].astype(str)),
        )
        frame = F.profile_features(snaps, as_of)
        frame.insert(0, "event_timestamp", as_of.to_numpy())
        profile_rows.append(frame.reset_index(names="member_id"))
    profiles = pd.concat(profile_rows, ignore_index=True)

    mobile, repay, bureau_rows = [], [], []
    mobile_money = feature_input(book.mobile_money)
    repayments = feature_input(book.repayments)
    bureau = feature_input(book.table("bureau"))
    for as_of in track(application_times(book), description="activity snapshots"):
        bu = F.bureau_features(bureau, as_of)
        bu.insert(0, "event_timestamp", as_of.to_numpy())
        bureau_rows.append(bu.reset_index(names="member_id"))
        mm = F.mobile_money_features(mobile_money, as_of)
        mm.insert(0, "event_timestamp", as_of.to_numpy())
        mobile.append(mm.reset_index(names="member_id"))
        rp = F.repayment_features(repayments, as_of)
        rp.insert(0, "event_timestamp", as_of.to_numpy())
        repay.append(rp.reset_index(names="member_id"))
    return {
        "member_profile": profiles,
        "mobile_money_features": pd.concat(mobile, ignore_index=True),
        "repayment_features": pd.concat(repay, ignore_index=True),
        "bureau_features": pd.concat(bureau_rows, ignore_index=True),
    }


def _pg_type(series: pd.Series) -> str:
    if series.name == "member_id":
        return "text"
    if series.name == "event_timestamp":
        return "timestamptz"
    if series.dtype == object:
        return "double precision[]"
    return "double precision"


def offline_schema(infra: InfraSettings) -> str:
    return feast_environment(infra)["ALAMA_FEAST_OFFLINE_SCHEMA"]


async def _write(dsn: str, schema: str, tables: dict[str, pd.DataFrame]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, frame in tables.items():
            columns = ", ".join(f'"{c}" {_pg_type(frame[c])}' for c in frame.columns)
            async with conn.transaction():
                await conn.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
                await conn.execute(f"CREATE TABLE {schema}.{name} ({columns})")
                records = _records(frame)
                await conn.copy_records_to_table(
                    name, schema_name=schema, records=records, columns=list(frame.columns)
                )
                await conn.execute(f"CREATE INDEX ON {schema}.{name} (member_id, event_timestamp)")
            await conn.execute(f"ANALYZE {schema}.{name}")
    finally:
        await conn.close()


def _records(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    cols = []
    for c in frame.columns:
        s = frame[c]
        if c == "event_timestamp":
            cols.append(list(pd.DatetimeIndex(pd.to_datetime(s, utc=True)).to_pydatetime()))
        elif s.dtype == object and c != "member_id":
            cols.append([np.asarray(v, dtype=np.float64).tolist() for v in s])
        elif c == "member_id":
            cols.append(s.astype(str).tolist())
        else:
            cols.append(s.astype(np.float64).tolist())
    return list(zip(*cols, strict=True))


def write_offline_tables(infra: InfraSettings, tables: dict[str, pd.DataFrame]) -> None:
    asyncio.run(_write(infra.postgres_dsn, offline_schema(infra), tables))


def apply_repo(infra: InfraSettings) -> None:
    """`feast apply`, exactly as a data scientist would run it in feature_repo/."""
    env = os.environ | feast_environment(infra) | {"PYTHONPATH": str(REPO_ROOT)}
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    result = subprocess.run(
        [feast, "apply"], cwd=FEATURE_REPO, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"feast apply failed:\n{result.stdout}\n{result.stderr}")


def entity_frame(book: LoanBook) -> pd.DataFrame:
    apps = book.labelled
    frame = apps[list(ENTITY_COLUMNS)].copy()
    frame["member_id"] = frame["member_id"].astype(str)
    frame["amount_kes"] = frame["amount_kes"].astype(np.float64)
    frame["term_months"] = frame["term_months"].astype(np.float64)
    frame["product"] = frame["product"].astype(str)
    frame["event_timestamp"] = pd.to_datetime(apps["applied_at"], utc=True)
    return frame


def training_set(infra: InfraSettings, book: LoanBook) -> pd.DataFrame:
    """Point-in-time training set for every labelled application, from Feast's offline store."""
    store = open_feature_store(infra)
    service = store.get_feature_service(FEATURE_SERVICE)
    frame = store.get_historical_features(entity_df=entity_frame(book), features=service).to_df()
    order = pd.Index(book.labelled["application_id"].astype(str))
    frame = frame.set_index("application_id").loc[order].reset_index()
    return frame


def materialize_online(infra: InfraSettings, tables: dict[str, pd.DataFrame]) -> None:
    """Copy each member's latest offline values into the Redis online store (materialize)."""
    stamps = pd.concat([pd.to_datetime(t["event_timestamp"], utc=True) for t in tables.values()])
    store = open_feature_store(infra)
    with into_log():  # Feast lists every view it materializes, in colour
        store.materialize(
            start_date=(stamps.min() - pd.Timedelta(seconds=1)).to_pydatetime(),
            end_date=(stamps.max() + pd.Timedelta(seconds=1)).to_pydatetime(),
        )
