"""Load a loan book into Feast and take training sets out of it, point-in-time.

The offline tables hold feature snapshots computed by `services.common.features` at several
instants per member (before, at and after the application), so the point-in-time join has later
values to ignore; the training set comes only from `get_historical_features`.
"""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from services.common import features as F
from services.common.feast_config import (
    FEATURE_REPO,
    FEATURE_SERVICE,
    REPO_ROOT,
    feast_environment,
    open_feature_store,
)
from services.common.members import KEY_SEPARATOR, member_key
from services.common.settings import InfraSettings
from training.contract import LoanBook
from training.library_output import into_log
from training.partitions import (
    PartitionedLoanBook,
    count_pieces,
    member_chunks,
    member_pieces,
    piece_chunks,
)

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

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
    rank = apps.groupby("member_id", sort=False, observed=True).cumcount().to_numpy()
    times: list[pd.Series] = []
    for r in range(int(rank.max()) + 1 if len(apps) else 0):
        sub = apps[rank == r]
        applied_at = pd.Series(
            pd.to_datetime(sub["applied_at"], utc=True).array,
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


#: Members whose feature snapshots are computed and written at once: bounds the memory of a
#: load whatever the book's size (a chunk's snapshots are written before the next is computed).
MEMBERS_PER_CHUNK = 50_000
#: Applications per point-in-time query to Feast: bounds the memory of a training set.
APPLICATIONS_PER_QUERY = 100_000
#: Processes computing and writing snapshots at once (this machine has 2 cores); each holds
#: one piece (a part of a book in parts, else a chunk) at a time.
LOAD_WORKERS = 2
OFFLINE_TABLES = (
    "member_profile",
    "mobile_money_features",
    "repayment_features",
    "bureau_features",
)


def build_tables(
    book: LoanBook, members_per_chunk: int = MEMBERS_PER_CHUNK
) -> dict[str, pd.DataFrame]:
    """The offline tables, each with member_id and event_timestamp, whole (for a book that fits
    in memory; loading streams `snapshot_chunks` instead)."""
    chunks = list(snapshot_chunks(book, members_per_chunk))
    return {
        name: pd.concat([chunk[name] for chunk in chunks], ignore_index=True)
        for name in OFFLINE_TABLES
    }


def snapshot_chunks(
    book: LoanBook, members_per_chunk: int = MEMBERS_PER_CHUNK
) -> Iterator[dict[str, pd.DataFrame]]:
    """The offline tables of each member chunk of the book, in turn; every feature is a function
    of one member's own rows, so the chunks together are exactly the whole book's tables."""
    for chunk in member_chunks(book, members_per_chunk):
        yield chunk_tables(chunk)


def chunk_tables(book: LoanBook) -> dict[str, pd.DataFrame]:
    """The offline tables of a book (or of a member chunk of one), each with member_id and
    event_timestamp; a table the source lacks gives its features' empty value (zeros, NaN) so
    every feature view has its table."""
    # one profile row per snapshot, as it was known at that snapshot's time
    snaps = feature_input(profile_snapshots(book))
    rank = snaps.groupby("member_id", observed=True).cumcount().to_numpy()
    profile_rows = []
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sub = snaps[rank == r]
        as_of = pd.Series(
            pd.to_datetime(sub["snapshot_at"], utc=True).array,
            index=pd.Index(sub["member_id"].astype(str)),
        )
        frame = F.profile_features(snaps, as_of)
        frame.insert(0, "event_timestamp", as_of.array)
        profile_rows.append(frame.reset_index(names="member_id"))
    profiles = pd.concat(profile_rows, ignore_index=True)

    mobile, repay, bureau_rows = [], [], []
    mobile_money = feature_input(book.mobile_money)
    repayments = feature_input(book.repayments)
    bureau = feature_input(book.table("bureau"))
    for as_of in application_times(book):
        bu = F.bureau_features(bureau, as_of)
        bu.insert(0, "event_timestamp", as_of.array)
        bureau_rows.append(bu.reset_index(names="member_id"))
        mm = F.mobile_money_features(mobile_money, as_of)
        mm.insert(0, "event_timestamp", as_of.array)
        mobile.append(mm.reset_index(names="member_id"))
        rp = F.repayment_features(repayments, as_of)
        rp.insert(0, "event_timestamp", as_of.array)
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


@dataclass
class OfflineLoad:
    """What a load wrote: rows per table and the instants the snapshots span."""

    rows: dict[str, int] = field(default_factory=dict)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None

    def add(self, tables: dict[str, pd.DataFrame]) -> None:
        for name, frame in tables.items():
            self.rows[name] = self.rows.get(name, 0) + len(frame)
            if len(frame) == 0:
                continue
            stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
            low, high = stamps.min(), stamps.max()
            self.first = low if self.first is None else min(self.first, low)
            self.last = high if self.last is None else max(self.last, high)

    def merge(self, other: OfflineLoad) -> None:
        for name, count in other.rows.items():
            self.rows[name] = self.rows.get(name, 0) + count
        for stamp in (other.first, other.last):
            if stamp is not None:
                self.first = stamp if self.first is None else min(self.first, stamp)
                self.last = stamp if self.last is None else max(self.last, stamp)


async def _copy(dsn: str, schema: str, tables: dict[str, pd.DataFrame]) -> None:
    """COPY one chunk's tables into `<table>_loading`, creating each on first use (under a lock:
    chunks may arrive from several processes at once)."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, frame in tables.items():
            loading = f"{name}_loading"
            columns = ", ".join(f'"{c}" {_pg_type(frame[c])}' for c in frame.columns)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{schema}.{name}")
                await conn.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{loading} ({columns})")
            await conn.copy_records_to_table(
                loading, schema_name=schema, records=_records(frame), columns=list(frame.columns)
            )
    finally:
        await conn.close()


async def _prepare(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name in OFFLINE_TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS {schema}.{name}_loading")
    finally:
        await conn.close()


#: The feature_store service's journal of the rows it streamed into an offline table
#: (services.feature_store.offline): `<table>_streamed`, keyed by (member_id, event_timestamp).
STREAMED_SUFFIX = "_streamed"


async def _keep_streamed_rows(conn: asyncpg.Connection, schema: str, name: str) -> None:
    """Carry the rows the feature_store service streamed into the table being replaced (those
    its journal lists) into the loaded one: a reload must not lose what training did not write.

    The old table is locked first, so a streamed write waits and then goes into the new table.
    Rows of another layout (the feature definitions changed since) cannot be carried: they are
    left behind and their keys leave the journal, so a replay can write them anew."""
    journal = f"{schema}.{name}{STREAMED_SUFFIX}"
    found = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
        journal,
        f"{schema}.{name}",
    )
    if not found:
        return
    await conn.execute(f"LOCK TABLE {schema}.{name} IN ACCESS EXCLUSIVE MODE")
    layout = (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    old = dict(await conn.fetch(layout, f"{schema}.{name}"))
    new = dict(await conn.fetch(layout, f"{schema}.{name}_loading"))
    if old != new:
        await conn.execute(f"DELETE FROM {journal}")
        return
    columns = ", ".join(f'o."{c}"' for c in new)
    await conn.execute(
        f"INSERT INTO {schema}.{name}_loading SELECT {columns} FROM {schema}.{name} o"
        f" JOIN {journal} j USING (member_id, event_timestamp)"
    )


async def _swap(dsn: str, schema: str, names: Iterable[str]) -> None:
    """Put the loaded tables in place at once: a reader never sees half a load; rows the
    feature_store service streamed into the old tables move into the new ones."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for name in names:
                await _keep_streamed_rows(conn, schema, name)
                await conn.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
                await conn.execute(f"ALTER TABLE {schema}.{name}_loading RENAME TO {name}")
                await conn.execute(f"CREATE INDEX ON {schema}.{name} (member_id, event_timestamp)")
        for name in names:
            await conn.execute(f"ANALYZE {schema}.{name}")
    finally:
        await conn.close()


def member_keys(ids: pd.Series, tenant: str) -> pd.Series:
    """The Feast entity values of a book's member ids: each one the tenant's member
    (services.common.members.member_key), so two SACCOs' books never share a member's rows."""
    member_key(tenant, "x")  # a malformed tenant fails here, before any row is written
    return tenant + KEY_SEPARATOR + ids.astype(str)


def keyed_tables(tables: dict[str, pd.DataFrame], tenant: str) -> dict[str, pd.DataFrame]:
    """Offline tables (from `chunk_tables`) with their member ids as the tenant's keys."""
    out = {}
    for name, frame in tables.items():
        frame = frame.copy()
        frame["member_id"] = member_keys(frame["member_id"], tenant)
        out[name] = frame
    return out


def load_piece(
    piece: Path | LoanBook, members_per_chunk: int, dsn: str, schema: str, tenant: str
) -> tuple[OfflineLoad, int]:
    """Compute and COPY the snapshots of one piece of `tenant`'s book (see `member_pieces`),
    chunk by chunk; returns what was written and how many members. Runs in a worker process
    too."""
    load, members = OfflineLoad(), 0
    for chunk in piece_chunks(piece, members_per_chunk):
        members += len(chunk.members)
        tables = keyed_tables(chunk_tables(chunk), tenant)
        del chunk  # before the next chunk is sliced
        asyncio.run(_copy(dsn, schema, tables))
        load.add(tables)
        del tables
    return load, members


def load_offline_tables(
    infra: InfraSettings,
    book: LoanBook,
    *,
    members_per_chunk: int = MEMBERS_PER_CHUNK,
    workers: int = LOAD_WORKERS,
    progress: Callable[[int], None] | None = None,
) -> OfflineLoad:
    """Every member chunk's snapshots into the offline store, `workers` pieces at a time (each
    in its own process when more than one), then swapped in at once. `progress` hears how many
    members each finished piece held."""
    dsn, schema = infra.postgres_dsn, offline_schema(infra)
    asyncio.run(_prepare(dsn, schema))
    load = OfflineLoad()
    workers = max(1, min(workers, count_pieces(book, members_per_chunk)))
    pieces = member_pieces(book, members_per_chunk)
    if workers == 1:
        for piece in pieces:
            done, members = load_piece(piece, members_per_chunk, dsn, schema, book.tenant)
            load.merge(done)
            if progress is not None:
                progress(members)
    else:
        context = multiprocessing.get_context("spawn")  # no forked asyncio, Feast or torch state
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            running: set[Future[tuple[OfflineLoad, int]]] = set()
            for piece in pieces:  # at most `workers` pieces in flight: memory stays bounded
                running.add(
                    pool.submit(load_piece, piece, members_per_chunk, dsn, schema, book.tenant)
                )
                if len(running) >= workers:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        _merge(load, future, progress)
            for future in as_completed(running):
                _merge(load, future, progress)
    asyncio.run(_swap(dsn, schema, [name for name in OFFLINE_TABLES if name in load.rows]))
    return load


def _merge(
    load: OfflineLoad,
    future: Future[tuple[OfflineLoad, int]],
    progress: Callable[[int], None] | None,
) -> None:
    done, members = future.result()
    load.merge(done)
    if progress is not None:
        progress(members)


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


def write_offline_tables(
    infra: InfraSettings, tables: dict[str, pd.DataFrame], tenant: str
) -> OfflineLoad:
    """Write whole offline tables (built by `build_tables`) of `tenant`'s book in one piece."""
    dsn, schema = infra.postgres_dsn, offline_schema(infra)
    tables = keyed_tables(tables, tenant)
    asyncio.run(_prepare(dsn, schema))
    asyncio.run(_copy(dsn, schema, tables))
    load = OfflineLoad()
    load.add(tables)
    asyncio.run(_swap(dsn, schema, list(tables)))
    return load


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
    frame["member_id"] = member_keys(frame["member_id"], book.tenant)
    frame["amount_kes"] = frame["amount_kes"].astype(np.float64)
    frame["term_months"] = frame["term_months"].astype(np.float64)
    frame["product"] = frame["product"].astype(str)
    frame["event_timestamp"] = pd.to_datetime(apps["applied_at"], utc=True)
    return frame


def training_set(
    infra: InfraSettings, book: LoanBook, applications_per_query: int = APPLICATIONS_PER_QUERY
) -> pd.DataFrame:
    """Point-in-time training set for every labelled application, from Feast's offline store,
    whole (the sequences as lists; training takes `training_inputs` instead)."""
    return pd.concat(
        list(training_set_chunks(infra, book, applications_per_query)), ignore_index=True
    )


def training_set_chunks(
    infra: InfraSettings, book: LoanBook, applications_per_query: int = APPLICATIONS_PER_QUERY
) -> Iterator[pd.DataFrame]:
    """The training set as point-in-time queries of at most so many applications each, in the
    book's order of labelled applications."""
    store = open_feature_store(infra)
    service = store.get_feature_service(FEATURE_SERVICE)
    entities = entity_frame(book)
    for start in range(0, len(entities), applications_per_query):
        part = entities.iloc[start : start + applications_per_query]
        frame = store.get_historical_features(entity_df=part, features=service).to_df()
        order = pd.Index(part["application_id"])
        yield frame.set_index("application_id").loc[order].reset_index()


def training_inputs(
    infra: InfraSettings, book: LoanBook, applications_per_query: int = APPLICATIONS_PER_QUERY
) -> tuple[pd.DataFrame, F.ModelInputs]:
    """The training set as the models take it: one row per labelled application of the scalar
    columns, and the models' arrays (float32, sequences stacked), built query by query so the
    sequences never sit in memory as Python lists of the whole book."""
    scalars: list[pd.DataFrame] = []
    arrays: list[F.ModelInputs] = []
    sequences = {*F.REPAYMENT_SEQUENCES, *F.MOBILE_MONEY_SEQUENCES}
    for frame in training_set_chunks(infra, book, applications_per_query):
        arrays.append(F.model_inputs(frame))
        scalars.append(frame[[c for c in frame.columns if c not in sequences]])
        del frame
    inputs = F.ModelInputs(
        **{
            name: np.concatenate([getattr(a, name) for a in arrays])
            for name in (f.name for f in fields(F.ModelInputs))
        }
    )
    return pd.concat(scalars, ignore_index=True), inputs


#: Rows Feast turns into online-store values and writes to Redis at once (Feast's default is
#: everything a materialization pulled at once).
ONLINE_WRITE_BATCH = 50_000


@dataclass(frozen=True)
class OnlineWindow:
    """The instants a load's online write covers: what `feast materialize START END` would be
    given to copy every snapshot (the latest row per member and view, as of `end`)."""

    start: datetime
    end: datetime


def online_window(load: OfflineLoad) -> OnlineWindow | None:
    if load.first is None or load.last is None:
        return None
    return OnlineWindow(
        (load.first - pd.Timedelta(seconds=1)).to_pydatetime(),
        (load.last + pd.Timedelta(seconds=1)).to_pydatetime(),
    )


def member_id_chunks(book: LoanBook, members_per_chunk: int) -> Iterator[list[str]]:
    """The member ids of each chunk `member_chunks` gives, in the same order, without reading
    any table but the members (a book in parts keeps them in part order in memory), as the
    tenant's keys the offline rows carry."""
    ids = member_keys(book.members["member_id"], book.tenant)
    if isinstance(book, PartitionedLoanBook):
        sizes = [pq.read_metadata(part / "members.parquet").num_rows for part in book.parts]
    else:
        sizes = [len(ids)]
    start = 0
    for size in sizes:
        part = ids.iloc[start : start + size].tolist()
        step = size if size <= members_per_chunk else members_per_chunk
        for first in range(0, size, max(step, 1)):
            yield part[first : first + step]
        start += size


@dataclass
class OnlineWrite:
    """What an online write did: members written per feature view, and the window recorded."""

    window: OnlineWindow | None = None
    members: dict[str, int] = field(default_factory=dict)


def write_online(
    infra: InfraSettings,
    book: LoanBook,
    load: OfflineLoad,
    *,
    members_per_chunk: int = MEMBERS_PER_CHUNK,
    workers: int = LOAD_WORKERS,
    progress: Callable[[int], None] | None = None,
) -> OnlineWrite:
    """Each member's latest offline values into the Redis online store, member chunk by member
    chunk, then the window recorded in the registry as `materialize` records it.

    `FeatureStore.materialize` pulls a feature view's every row in the window into one process
    (at a million members one view grew past 14 GB); here each (chunk, view) pair runs Feast's
    own materialization of that view with its source narrowed to the chunk's members, so what
    reaches Redis is what `materialize` writes (the latest row per member, Feast's conversion,
    Feast's online write) and memory is bounded by the chunk. `workers` pairs at a time, each
    in its own process when more than one; `progress` hears each finished chunk's members."""
    window = online_window(load)
    done = OnlineWrite(window)
    if window is None:
        return done
    store = open_feature_store(infra)
    views = [view.name for view in store.list_feature_views() if view.online]
    env = feast_environment(infra)
    chunks = list(member_id_chunks(book, members_per_chunk))
    jobs = ((view, ids) for ids in chunks for view in views)
    workers = min(workers, len(chunks))  # one chunk is written here: no processes to start

    def finished(view: str, members: int) -> None:
        done.members[view] = done.members.get(view, 0) + members
        if progress is not None and view == views[-1]:
            progress(members)

    if workers <= 1:
        for view, ids in jobs:
            finished(view, write_online_chunk(infra, env, view, ids, window))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            running: dict[Future[int], str] = {}
            for view, ids in jobs:  # at most 2 x `workers` chunks in flight: memory stays bounded
                running[pool.submit(write_online_chunk, infra, env, view, ids, window)] = view
                if len(running) >= 2 * workers:
                    complete, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in complete:
                        finished(running.pop(future), future.result())
            for future in as_completed(running):
                finished(running[future], future.result())
    for view in views:  # as `materialize` does after each view: incremental runs start here
        store.registry.apply_materialization(
            store.get_feature_view(view), store.project, window.start, window.end, commit=True
        )
    return done


_STORES: dict[tuple[tuple[str, str], ...], FeatureStore] = {}


def write_online_chunk(
    infra: InfraSettings, env: dict[str, str], view_name: str, ids: list[str], window: OnlineWindow
) -> int:
    """Feast's materialization of one feature view for these members only (in a worker process
    too); returns how many members it covered."""
    os.environ.update(env)  # the parent's project and schema, whatever the worker inherited
    key = tuple(sorted(env.items()))
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = open_feature_store(infra)
        store.config.materialization_config.online_write_batch_size = ONLINE_WRITE_BATCH
        # PostgreSQL picks each member's latest row (Feast's own query) instead of sending all
        # of them for pandas to pick from: a third of the time, the same rows (a test checks)
        store.config.materialization_config.pull_latest_features = True
    view = chunk_view(store.get_feature_view(view_name), ids)
    with into_log():
        store._get_provider().materialize_single_feature_view(
            config=store.config,
            feature_view=view,
            start_date=window.start,
            end_date=window.end,
            registry=store.registry,
            project=store.project,
            tqdm_builder=_no_progress,
        )
    return len(ids)


def chunk_view(view: FeatureView, ids: list[str]) -> FeatureView:
    """A copy of `view` whose offline source holds only these members' rows (the source's own
    query, narrowed on the join key; PostgreSQL reads them through the member index)."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    source = view.batch_source
    if not isinstance(source, PostgreSQLSource):
        raise TypeError(f"{view.name}: an online write per chunk reads PostgreSQL sources only")
    (key,) = [column.name for column in view.entity_columns]
    members = ",".join("'" + str(i).replace("'", "''") + "'" for i in ids)
    narrowed = PostgreSQLSource(
        name=source.name,
        query=(
            f"SELECT * FROM {source.get_table_query_string()} AS whole "
            f'WHERE whole."{key}" = ANY(ARRAY[{members}]::text[])'
        ),
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=source.field_mapping,
    )
    copied = copy.copy(view)
    copied.source = narrowed  # what Feast's local engine reads
    copied.batch_source = narrowed
    return copied


def _no_progress(length: int) -> tqdm:
    return tqdm(total=length, disable=True)
