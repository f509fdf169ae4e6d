"""Retraining (issue 13, item 3): a challenger trained by the same pipeline on the loan book the
champion learnt from plus the loans that matured since, registered with the `challenger` alias.

`python -m training.retrain --live-rows FILE --trigger drift` is what the retrainer service runs
(services/retrainer); it can be run by hand too. The live rows are the applications Alama scored
whose outcome is now known (`credit.loan_outcomes` joined to `loan.applications`, kept by the
retrainer). Their features come from Feast's offline store point in time, like every training
row: the feature store writes each streamed update there as it pushes it online. A member's
account profile is a snapshot view that only a book load writes, so for each live application
the member's latest snapshot before it is carried forward to the application's time, which is
what the online store (materialised from those snapshots) served when the application was
scored.

The new rows are the newest, so the out-of-time split the pipeline holds out is the world as it
is now: the challenger's held-out metrics, and the promotion gate on them, judge it on the data
that made the champion drift.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from services.common.members import member_key
from services.common.settings import InfraSettings
from training.contract import LoanBook

app = typer.Typer(add_completion=False, help=__doc__)

#: the columns a live row carries (the retrainer's export), all of the contract's applications
LIVE_COLUMNS = (
    "application_id",
    "member_id",
    "sacco_id",
    "applied_at",
    "product",
    "amount_kes",
    "term_months",
    "default_12m",
    "outcome_at",
)
TRIGGERS = ("drift", "performance", "schedule", "manual")


class RetrainRefused(RuntimeError):
    """Nothing to learn from (no new rows, or rows the book cannot take); says why."""


def live_applications(rows: pd.DataFrame, book: LoanBook) -> pd.DataFrame:
    """The live rows as the contract's applications: only members the book knows (their
    protected attributes, for the fairness checks, are in its members table), only ids the book
    does not already hold, outcomes after the application."""
    missing = [c for c in LIVE_COLUMNS if c not in rows.columns]
    if missing:
        raise RetrainRefused(f"the live rows lack columns {missing}")
    live = rows[list(LIVE_COLUMNS)].copy()
    live["applied_at"] = pd.to_datetime(live["applied_at"], utc=True)
    live["outcome_at"] = pd.to_datetime(live["outcome_at"], utc=True)
    known = set(book.members["member_id"].astype(str))
    # the book's tenant only: another SACCO's member numbers may collide with this one's
    live = live[live["sacco_id"].astype(str) == book.tenant]
    live = live[live["member_id"].astype(str).isin(known)]
    live = live[~live["application_id"].isin(set(book.applications["application_id"]))]
    live = live[live["outcome_at"] > live["applied_at"]]
    live = live.drop_duplicates("application_id")
    columns = book.applications.columns
    out = pd.DataFrame({c: pd.Series([pd.NA] * len(live), dtype=object) for c in columns})
    for c in LIVE_COLUMNS:
        out[c] = live[c].to_numpy()
    return out.astype(book.applications.dtypes.to_dict(), errors="ignore")


def retraining_splits(book: LoanBook, live: pd.DataFrame, profile: Any) -> Any:
    """The champion's own split of the book (the same rows held out, so the gate compares the two
    on rows neither learnt from), and each live row's split fixed by its application id (a hash:
    3 in 5 teach the challenger the world as it is now, 1 validates, 1 is held out to judge it),
    so a row keeps its split in every later retraining too, whatever else joins."""
    import hashlib

    import numpy as np

    from training.pipeline import Splits, split

    base = split(book.labelled, profile)
    n = len(book.labelled)
    slot = np.array(
        [
            int(hashlib.sha256(str(a).encode()).hexdigest()[:8], 16) % 5
            for a in live["application_id"]
        ],
        dtype=np.int64,
    )
    rows = np.arange(len(live))
    return Splits(
        np.concatenate([base.train, n + rows[slot < 3]]),
        np.concatenate([base.valid, n + rows[slot == 3]]),
        np.concatenate([base.test, n + rows[slot == 4]]),
        base.out_of_time,
    )


def extend_book(book: LoanBook, live: pd.DataFrame) -> LoanBook:
    """The book with the live applications appended (nothing else of it changes)."""
    tables = dict(book.tables)
    apps = pd.concat([book.applications, live], ignore_index=True)
    apps["applied_at"] = pd.to_datetime(apps["applied_at"], utc=True)
    apps["outcome_at"] = pd.to_datetime(apps["outcome_at"], utc=True)
    # appended, not sorted in: the book's labelled rows keep their positions (and so their split)
    tables["applications"] = apps.reset_index(drop=True)
    meta = dict(book.meta) | {"live_rows": len(live)}
    # the true PD is known only for the book's own (synthetic) applications, not the live ones
    return LoanBook(tables, book.source, book.cutoff, None, meta)


#: snapshot views only a book load writes: a live application gets the member's latest row
SNAPSHOT_TABLES = ("member_profile", "bureau_features")


async def carry_profiles_forward(infra: InfraSettings, live: pd.DataFrame, tenant: str) -> int:
    """Give each live application the member's latest account and bureau snapshots before it,
    at its time (what the online store, materialised from them, served when it was scored).

    Returns the rows written. Idempotent: a snapshot already at that instant is not doubled.
    """
    import asyncpg

    from training.feature_tables import offline_schema

    if live.empty:
        return 0
    schema = offline_schema(infra)
    keys = [member_key(tenant, str(m)) for m in live["member_id"]]
    at = [
        t.to_pydatetime() - pd.Timedelta(seconds=1).to_pytimedelta()
        for t in pd.to_datetime(live["applied_at"], utc=True)
    ]
    written = 0
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        for table in SNAPSHOT_TABLES:
            columns = [
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    schema,
                    table,
                )
            ]
            if not columns:
                if table == "member_profile":
                    raise RetrainRefused(f"{schema}.{table} does not exist: load a book first")
                continue  # a source without bureau data
            carried = [c for c in columns if c not in ("member_id", "event_timestamp")]
            quoted = ", ".join(f'p."{c}"' for c in carried)
            names = ", ".join(f'"{c}"' for c in carried)
            status = await conn.execute(
                f"""
                INSERT INTO {schema}.{table} (member_id, event_timestamp, {names})
                SELECT DISTINCT ON (a.member_id, a.at) a.member_id, a.at, {quoted}
                FROM unnest($1::text[], $2::timestamptz[]) AS a(member_id, at)
                JOIN {schema}.{table} p
                  ON p.member_id = a.member_id AND p.event_timestamp < a.at
                WHERE NOT EXISTS (
                    SELECT 1 FROM {schema}.{table} q
                    WHERE q.member_id = a.member_id AND q.event_timestamp = a.at
                )
                ORDER BY a.member_id, a.at, p.event_timestamp DESC
                """,
                keys,
                at,
            )
            written += int(status.split()[-1])
    finally:
        await conn.close()
    return written


def retrain(
    infra: InfraSettings,
    profile_name: str,
    book_folder: Path,
    live_rows: pd.DataFrame,
    *,
    trigger: str,
    requested_by: str,
    min_live_rows: int = 1,
    bundle_root: Path | None = None,
    echo: Any = print,
) -> dict[str, Any]:
    """Train, write the bundle (not promoted), register it as the challenger, record the change.

    Returns what the retrainer records: model and bundle versions, rows, held-out metrics.
    """
    from training import pipeline
    from training.bundles import BUNDLES
    from training.export import write_bundle
    from training.partitions import load_book
    from training.profiles import get_profile
    from training.promotion import register_trained
    from training.registry import Registry
    from training.registry_events import RegistrySettings
    from training.tracking import REGISTERED_MODEL, track_run

    if trigger not in TRIGGERS:
        raise RetrainRefused(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    profile = get_profile(profile_name)
    book = load_book(book_folder)
    live = live_applications(live_rows, book)
    if len(live) < min_live_rows:
        raise RetrainRefused(
            f"{len(live)} new labelled applications (at least {min_live_rows} needed)"
        )
    echo(f"{len(live):,} live applications with outcomes join the book's {len(book.labelled):,}")
    carried = asyncio.run(carry_profiles_forward(infra, live, book.tenant))
    echo(f"{carried:,} account and bureau snapshots carried forward to the live applications")
    extended = extend_book(book, live)
    splits = retraining_splits(book, live, profile)
    trained = pipeline.train(infra, profile, extended, echo=echo, splits=splits)
    metrics = pipeline.evaluate(trained)
    bundle = write_bundle(trained, metrics, promote=False, root=bundle_root or BUNDLES)
    version = track_run(trained, metrics, bundle)
    # the challenger, in shadow (the first champion only when there is none to compare with)
    _change, recorded = register_trained(
        Registry(REGISTERED_MODEL), version, requested_by, trigger, RegistrySettings()
    )
    if not recorded.acknowledged:
        echo(f"the change waits in the registry outbox: {recorded.problem}")
    return {
        "model_version": version,
        "bundle_version": bundle.name,
        "trigger": trigger,
        "live_rows": len(live),
        "book_rows": len(book.labelled),
        # the ensemble's metrics on each held-out split (the out-of-time one is the newest rows)
        "held_out": {
            split: (metrics.get(split) or {}).get("ensemble", {})
            for split in ("test", "out_of_time")
        },
        "recorded": recorded.acknowledged,
    }


@app.command()
def main(
    live_rows: Annotated[
        Path, typer.Option(help="parquet of labelled live applications (the retrainer's export)")
    ],
    trigger: Annotated[str, typer.Option(help="drift, performance, schedule or manual")],
    profile: Annotated[str, typer.Option(help="training profile")] = "quick",
    book: Annotated[
        Path | None,
        typer.Option(help="the loan book folder the champion learnt from (default: synthetic)"),
    ] = None,
    by: Annotated[str, typer.Option("--by", help="who asks")] = "retrainer",
    min_live_rows: Annotated[int, typer.Option(min=1)] = 1,
    bundle_root: Annotated[
        Path | None, typer.Option(help="where the bundle is written (default artifacts/bundles)")
    ] = None,
    result: Annotated[Path | None, typer.Option(help="write the result here as JSON")] = None,
) -> None:
    """Train a challenger on the champion's book plus the live rows and register it."""
    from training import paths
    from training.profiles import get_profile

    folder = book or paths.synthetic_book_dir(get_profile(profile))
    if not (folder / "loanbook.json").exists():
        raise typer.BadParameter(f"no loan book at {folder}", param_hint="--book")
    try:
        rows = pd.read_parquet(live_rows)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{live_rows}: {exc}", param_hint="--live-rows") from None
    try:
        out = retrain(
            InfraSettings(),
            profile,
            folder,
            rows,
            trigger=trigger,
            requested_by=by,
            min_live_rows=min_live_rows,
            bundle_root=bundle_root,
        )
    except RetrainRefused as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(code=3) from None  # 2 is a usage error (click's)
    text = json.dumps(out, indent=2, default=str)
    if result is not None:
        result.write_text(text + "\n")
    typer.echo(text)


def _exit_without_teardown() -> None:
    """Run the command, then leave with its exit code without the interpreter's teardown.

    A process that ends soon after reading parquet files (a refusal, a usage error) sometimes
    aborts in teardown ("terminate called without an active exception": pyarrow's thread pool
    destroyed while one of its threads is still being started), so exit code 3 became 134 and
    the retrainer recorded a refusal as a failure (a CI run's retrainer tests, 3 to 7 aborts in
    20 on this machine kind). Everything the job reports is written and flushed by then.
    """
    try:
        app()  # as ever: usage errors printed, ending in SystemExit with the command's code
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_without_teardown()
