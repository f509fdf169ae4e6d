"""Drift service: `python -m services.drift` (or `... run`) watches credit decisions; `report`
writes an Evidently HTML report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.common.cli import service_cli
from services.common.liveness import serve_health
from services.common.logs import configure_logging
from services.common.runtime import freeze_startup_heap, use_event_loop_policy
from services.common.telemetry import setup_tracing
from services.drift.agents import current_reference
from services.drift.reference import ReferenceMissing
from services.drift.settings import DriftSettings

console = Console()


def _settings() -> DriftSettings:
    settings = DriftSettings()
    configure_logging(settings.service_name, settings.log_level)
    return settings


def run() -> None:
    """Consume credit.decisions, export PSI gauges and publish drift alerts until stopped."""
    import faust

    from services.common.faust_app import worker_ready
    from services.drift.agents import create_drift_app

    settings = _settings()
    use_event_loop_policy(settings.infra.event_loop)  # before the app or the worker make a loop
    try:
        service = create_drift_app(settings)
    except ReferenceMissing as exc:
        console.print(f"[red]cannot start drift[/red]: {exc}")
        raise typer.Exit(1) from exc
    setup_tracing(settings)
    if settings.metrics_port:  # /metrics, /livez (agents making progress), /readyz on one port
        serve_health(
            settings.metrics_port, service.liveness, ready=lambda: worker_ready(service.app)
        )
    worker = faust.Worker(service.app, loglevel=settings.log_level)
    freeze_startup_heap()
    worker.execute_from_commandline()


app = service_cli(run, help=__doc__)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")],
    window: Annotated[
        int | None, typer.Option(help="recent decisions to compare (default: window size)")
    ] = None,
) -> None:
    """Compare the most recent decisions with the bundle's training sample (Evidently)."""
    from services.drift.report import recent_decisions, write_report

    settings = _settings()
    try:
        reference = current_reference(settings)
    except ReferenceMissing as exc:
        console.print(f"[red]no reference[/red]: {exc}")
        raise typer.Exit(1) from exc
    count = window or settings.window_size
    current = asyncio.run(recent_decisions(settings, count))
    if current.empty:
        console.print(f"[red]no decisions[/red] on {settings.decisions_topic}: nothing to compare")
        raise typer.Exit(1)
    columns = write_report(reference, current, out)
    console.print(
        f"wrote {out}: {len(current)} recent decisions vs the {reference.model_version}"
        f" reference over {len(columns)} columns"
    )


if __name__ == "__main__":
    app()
