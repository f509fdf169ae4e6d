"""Audit service: `python -m services.audit` (or `... run`) consumes and serves the trail
contract (gRPC, alama.audit.v1.AuditService); `migrate`, `verify`, `lookup`, `retention` maintain;
`registry` lists the model registry's changes (promotions, refusals, rollbacks) in the chain.
(A member's erasure arrives as a MemberErasureRequested event, services.audit.erasures.)

`run`, `verify`, `lookup` and `registry` log in as the writer (INSERT and SELECT only);
`migrate` and `retention` as the schema's owner, and `run` also for members' erasures alone
(deleting the personal data it shreds).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.audit.anchors import AnchorReport, verify_with_anchors
from services.audit.consumer import run_consumer
from services.audit.erasures import AuditErasures
from services.audit.server import start_server
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore, RetentionRefused
from services.audit.trail import TrailReader
from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.postgres import create_pool
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing, start_metrics

console = Console()
T = TypeVar("T")


class Login(StrEnum):
    WRITER = "writer"
    OWNER = "owner"


async def _with_store(
    settings: AuditSettings, login: Login, work: Callable[[AuditStore], Awaitable[T]]
) -> T:
    dsn = settings.owner_dsn if login is Login.OWNER else settings.writer_dsn
    pool = await create_pool(settings.infra.model_copy(update={"postgres_dsn": dsn}), max_size=4)
    try:
        return await work(AuditStore(pool, settings.db_schema, mac_key=settings.mac_key_bytes))
    finally:
        await pool.close()


async def _migrate(settings: AuditSettings) -> int | None:
    return await _with_store(
        settings,
        Login.OWNER,
        lambda store: store.migrate(writer=settings.writer_user, readers=settings.readers),
    )


def _settings() -> AuditSettings:
    settings = AuditSettings()
    configure_logging(settings.service_name, settings.log_level)
    return settings


def run() -> None:
    """Consume the pipeline topics and append every event to the chain, and serve applications'
    trails over gRPC, until SIGTERM/SIGINT."""
    settings = _settings()
    setup_tracing(settings)
    start_metrics(settings)
    if settings.migrate_on_start:
        asyncio.run(_migrate(settings))

    async def serve(stop: asyncio.Event) -> None:
        async def main(store: AuditStore) -> None:
            async def with_owner(owner: AuditStore) -> None:  # members' erasures delete as owner
                await run_consumer(settings, store, stop, erasures=AuditErasures(settings, owner))

            reader = TrailReader(
                store,
                settings.anchor_file,
                max_rows=settings.trail_max_rows,
                reverify_after=timedelta(seconds=settings.trail_reverify_seconds),
            )
            grpc_server = await start_server(
                reader, host=settings.grpc_host, port=settings.grpc_port
            )

            async def not_serving_on_stop() -> None:
                await stop.wait()
                await grpc_server.not_serving()

            watcher = asyncio.create_task(not_serving_on_stop())
            try:
                await _with_store(settings, Login.OWNER, with_owner)
            finally:  # in-flight trails finish within the grace period
                watcher.cancel()
                await grpc_server.stop(settings.shutdown_grace_seconds)

        await _with_store(settings, Login.WRITER, main)

    run_until_signalled(serve, settings.infra.event_loop)


app = service_cli(run, help=__doc__)


@app.command()
def migrate() -> None:
    """Create or upgrade the audit schema as its owner; grant the writer INSERT and SELECT."""
    settings = _settings()
    adopted = asyncio.run(_migrate(settings))
    console.print(f"schema {settings.db_schema} ready; the writer is {settings.writer_user}")
    if adopted is not None:
        console.print(f"rows written before sealing adopted by the sealed event at seq {adopted}")


@app.command()
def verify() -> None:
    """Recompute the chain and its seals, and check it against the anchors outside PostgreSQL
    (the file and the topic); exit 1 naming what is broken."""
    settings = _settings()
    report: AnchorReport = asyncio.run(
        _with_store(settings, Login.WRITER, lambda store: verify_with_anchors(settings, store))
    )
    chain = report.chain
    if chain.ok:
        console.print(
            f"[green]chain ok[/green]: {chain.rows_checked} rows checked"
            f" (seq {chain.start.seq + 1}..{chain.head.seq})"
        )
    else:
        console.print(
            f"[red]chain broken[/red] at seq {chain.first_broken_seq}: {chain.reason}"
            f" ({chain.rows_checked} rows checked)"
        )
    for problem in report.problems:
        console.print(f"[red]anchor[/red]: {problem}")
    if report.ok:
        console.print(f"[green]anchors ok[/green]: {report.anchors} anchors match the chain")
        return
    raise typer.Exit(1)


@app.command()
def lookup(application_id: Annotated[str, typer.Option("--application-id")]) -> None:
    """Every audit row of one application, in the order of its life."""
    records = asyncio.run(
        _with_store(_settings(), Login.WRITER, lambda store: store.lookup(application_id))
    )
    table = Table("seq", "topic", "payload type", "occurred at", "event id", "personal data")
    for record in records:
        row = record.row
        table.add_row(
            str(row.seq),
            row.topic,
            row.payload_type.rsplit(".", 1)[-1],
            row.occurred_at.isoformat(),
            row.event_id,
            "kept" if record.personal else "-",
        )
    console.print(table)


@app.command()
def registry() -> None:
    """The model registry's changes in the chain: who promoted, refused or rolled back which
    model and why, each record verified with its neighbours; exit 1 if one does not verify."""
    records = asyncio.run(
        _with_store(_settings(), Login.WRITER, lambda store: store.registry_changes())
    )
    console.print(f"{len(records)} model registry change(s) in the audit chain")
    for record in records:
        change = json.loads(record.row.payload)
        action = str(change.get("action", "")).removeprefix("REGISTRY_ACTION_").lower()
        replaced = change.get("replaced_model_version")
        ok = record.verified and not record.next_problem
        console.print(
            f"seq {record.row.seq}  {record.row.recorded_at.isoformat(timespec='seconds')}  "
            f"[bold]{action}[/bold] version {change.get('model_version', '?')} (bundle "
            f"{change.get('bundle_version', '?')})"
            + (f" replacing {replaced}" if replaced else "")
            + f", asked by {escape(change.get('requested_by', '?'))}: "
            f"{escape(change.get('reason', ''))}  "
            + ("[green]verified[/green]" if ok else "[red]NOT VERIFIED[/red]"),
            highlight=False,
        )
    broken = [r for r in records if not r.verified or r.next_problem]
    for record in broken:
        console.print(
            f"[red]seq {record.row.seq}[/red]: {escape(record.problem or record.next_problem)}"
        )
    if broken:
        raise typer.Exit(1)


@app.command()
def retention(
    days: Annotated[
        int | None,
        typer.Option(help="keep this many days (never fewer than ALAMA_AUDIT_RETENTION_MIN_DAYS)"),
    ] = None,
    requested_by: Annotated[
        str | None, typer.Option(help="who asks; recorded in the chain (default: the OS user)")
    ] = None,
) -> None:
    """Prune rows older than the retention period from the start of the chain, recording the
    request (who, when, cut-off) as a sealed event in the chain."""
    settings = _settings()
    keep = settings.retention_days if days is None else days
    if keep < settings.retention_min_days:
        console.print(
            f"[red]refused[/red]: --days {keep} is below the minimum age of"
            f" {settings.retention_min_days} days (ALAMA_AUDIT_RETENTION_MIN_DAYS)"
        )
        raise typer.Exit(2)
    cutoff = datetime.now(UTC) - timedelta(days=keep)
    who = requested_by or getpass.getuser()
    try:
        result = asyncio.run(
            _with_store(
                settings,
                Login.OWNER,
                lambda store: store.apply_retention(
                    cutoff, min_age=settings.retention_min_age, requested_by=who
                ),
            )
        )
    except RetentionRefused as exc:
        console.print(f"[red]refused[/red]: {exc}")
        raise typer.Exit(2) from exc
    if result.event_seq is None:
        console.print(f"nothing recorded before {cutoff.isoformat()}; nothing pruned")
        return
    console.print(
        f"pruned {result.rows_pruned} rows through seq {result.through.seq};"
        f" retention recorded at seq {result.event_seq} (requested by {who})"
    )


if __name__ == "__main__":
    app()
