"""Retraining: `python -m services.retrainer` keeps the live applications and their outcomes,
records drift and performance alerts, and trains a challenger (`python -m training.retrain`,
registered with MLflow's `challenger` alias) when an alert or the schedule asks and enough
outcomes have matured; `runs` lists what it did, `run-now` trains one at once."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing, start_metrics
from services.retrainer.policy import Due
from services.retrainer.runner import Runner
from services.retrainer.settings import RetrainerSettings
from services.retrainer.wiring import open_store, serve

console = Console()


def run() -> None:
    """Consume applications, outcomes and alerts, and retrain when due, until SIGTERM/SIGINT."""
    settings = RetrainerSettings()
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    start_metrics(settings)
    run_until_signalled(lambda stop: serve(settings, stop), settings.infra.event_loop)


app = service_cli(run, help=__doc__)


@app.command()
def runs(limit: int = 20) -> None:
    """The latest runs: trigger, why, result and the challenger each registered."""
    settings = RetrainerSettings()

    async def fetch() -> list:  # type: ignore[type-arg]
        store = await open_store(settings)
        try:
            return await store.runs(limit)
        finally:
            await store.pool.close()

    table = Table("run", "trigger", "status", "live rows", "challenger", "reason")
    for r in asyncio.run(fetch()):
        challenger = f"{r.model_version} ({r.bundle_version})" if r.model_version else "-"
        table.add_row(r.run_id, r.trigger, r.status, str(r.live_rows or "-"), challenger, r.reason)
    console.print(table)


@app.command(name="run-now")
def run_now(
    reason: Annotated[str, typer.Option(help="why (recorded with the run)")] = "asked by hand",
) -> None:
    """Train a challenger now on the kept live rows (trigger `manual`), whatever the policy."""
    settings = RetrainerSettings()
    configure_logging(settings.service_name, settings.log_level)

    async def once() -> str:
        store = await open_store(settings)
        try:
            # the service's own run is not this command's to abandon, nor to train beside
            busy = [r.run_id for r in await store.runs(50) if r.status == "running"]
            if busy:
                return f"not started: run {busy[0]} is in progress"
            return await Runner(store, settings).run(Due("manual", reason, ()))
        finally:
            await store.pool.close()

    status = asyncio.run(once())
    console.print(f"run {status}")
    if status != "registered":
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
