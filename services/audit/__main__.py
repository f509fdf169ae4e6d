"""Audit service CLI: `run` consumes; `verify`, `lookup`, `erase`, `retention` maintain."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from services.audit.consumer import run_consumer
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.common.logs import configure_logging
from services.common.postgres import create_pool
from services.common.telemetry import setup_tracing, start_metrics

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
T = TypeVar("T")


async def _with_store(settings: AuditSettings, work: Callable[[AuditStore], Awaitable[T]]) -> T:
    pool = await create_pool(settings.infra, max_size=4)
    try:
        store = AuditStore(pool, settings.db_schema)
        await store.create_schema()
        return await work(store)
    finally:
        await pool.close()


def _settings() -> AuditSettings:
    settings = AuditSettings()
    configure_logging(settings.service_name, settings.log_level)
    return settings


@app.command()
def run() -> None:
    """Consume the pipeline topics and append every event to the chain until SIGTERM/SIGINT."""
    settings = _settings()
    setup_tracing(settings)
    start_metrics(settings)

    async def main(store: AuditStore) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_consumer(settings, store, stop)

    asyncio.run(_with_store(settings, main))


@app.command()
def verify() -> None:
    """Recompute the chain; exit 1 naming the first broken row."""
    result = asyncio.run(_with_store(_settings(), lambda store: store.verify()))
    if result.ok:
        console.print(f"[green]chain ok[/green]: {result.rows_checked} rows checked")
        return
    console.print(
        f"[red]chain broken[/red] at seq {result.first_broken_seq}: {result.reason}"
        f" ({result.rows_checked} rows checked)"
    )
    raise typer.Exit(1)


@app.command()
def lookup(application_id: Annotated[str, typer.Option("--application-id")]) -> None:
    """Every audit row of one application, in the order of its life."""
    records = asyncio.run(_with_store(_settings(), lambda store: store.lookup(application_id)))
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
def erase(member_id: Annotated[str, typer.Option("--member-id")]) -> None:
    """Erase a member's personal data (Kenya Data Protection Act 2019); the chain still verifies."""
    result = asyncio.run(_with_store(_settings(), lambda store: store.erase_member(member_id)))
    console.print(
        f"erased personal data of {result.events_erased} events;"
        f" erasure recorded at seq {result.erasure_seq}"
    )


@app.command()
def retention(
    days: Annotated[int | None, typer.Option(help="override ALAMA_AUDIT_RETENTION_DAYS")] = None,
) -> None:
    """Prune rows older than the retention period from the start of the chain, keeping an anchor."""
    settings = _settings()
    cutoff = datetime.now(UTC) - timedelta(
        days=days if days is not None else settings.retention_days
    )
    result = asyncio.run(_with_store(settings, lambda store: store.prune(cutoff)))
    console.print(
        f"pruned {result.rows_pruned} rows; anchor at seq {result.anchor.seq}"
        f" ({result.anchor.row_hash[:16]}…)"
    )


if __name__ == "__main__":
    app()
