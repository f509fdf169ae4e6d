"""Simulator CLI: `python -m simulator run` plays core banking and mobile money from a loan book."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from services.common.logs import configure_logging
from services.common.telemetry import setup_tracing
from simulator.books import BookNotFound
from simulator.run import (
    LiveStatus,
    SimulationOptions,
    Summary,
    Via,
    simulate,
)
from simulator.settings import SimulatorSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


@app.callback()
def main() -> None:
    """Plays the SACCO core banking system and the mobile-money provider from a loan book (a
    profile's synthetic world, or an imported lender's history), at a chosen rate."""


@app.command()
def run(
    applications: Annotated[int, typer.Option(min=0, help="applications to send")] = 500,
    rate: Annotated[
        float, typer.Option(min=0, help="applications per second (0: as fast as allowed)")
    ] = 50.0,
    via: Annotated[
        Via,
        typer.Option(
            help="gateway REST API (queued; scores: synchronous), or Kafka as core banking"
        ),
    ] = Via.GATEWAY,
    run_id: Annotated[
        str | None, typer.Option(help="prefix of the application ids (random when unset)")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="profile whose synthetic loan book is played (tiny, quick, full)"),
    ] = None,
    book: Annotated[
        str | None,
        typer.Option(
            help="play this imported loan book instead: its name under artifacts/loanbooks/"
            " or its folder"
        ),
    ] = None,
    history: Annotated[
        bool, typer.Option(help="send the members' mobile money and repayments first")
    ] = True,
    webhook_batch: Annotated[
        int, typer.Option(min=1, max=500, help="transactions per webhook delivery")
    ] = 500,
    wait_for_features: Annotated[
        bool, typer.Option(help="wait until the feature store has consumed the history")
    ] = True,
    wait_timeout: Annotated[float, typer.Option(help="seconds to wait for the features")] = 120.0,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="applications in flight at most")
    ] = None,
    gateway_url: Annotated[str | None, typer.Option(help="the gateway's base URL")] = None,
    disburse: Annotated[
        bool | None,
        typer.Option(
            help="after the applications, disburse a loan for each approved one and record its"
            " instalments (default: ALAMA_SIMULATOR_DISBURSE_LOANS, off)",
            show_default=False,
        ),
    ] = None,
    decision_wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="seconds disbursement waits for decisions and reviews (default: the settings',"
            " 60)",
        ),
    ] = None,
    shock: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="an economic shock (0..1): members earn less (wallet inflows and declared"
            " incomes fall by up to half) and the synthesized loans are paid later and default"
            " more",
        ),
    ] = 0.0,
    summary_json: Annotated[
        Path | None, typer.Option(help="write the summary (with every application id) here")
    ] = None,
) -> None:
    """History, an optional wait for the feature store, then applications at --rate."""
    overrides: dict[str, object] = {}
    for name, value in (
        ("profile", profile),
        ("book", book),
        ("concurrency", concurrency),
        ("gateway_url", gateway_url),
    ):
        if value is not None:
            overrides[name] = value
    settings = SimulatorSettings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.service_name, settings.log_level)
    provider = setup_tracing(settings)
    options = SimulationOptions(
        applications=applications,
        rate=rate or None,
        via=via,
        run_id=run_id,
        history=history,
        webhook_batch=webhook_batch,
        wait_for_features=wait_for_features,
        wait_timeout_seconds=wait_timeout,
        disburse=disburse,
        shock=shock,
        decision_wait_seconds=decision_wait,
    )
    live = LiveStatus()
    try:
        with Live(live, console=console, refresh_per_second=4, transient=True):
            summary = asyncio.run(simulate(settings, options, live=live))
    except BookNotFound as exc:
        raise typer.BadParameter(str(exc), param_hint="--book") from None
    finally:
        provider.shutdown()
    print_summary(summary)
    if summary_json is not None:
        summary.write_json(summary_json)
        console.print(f"summary written to {summary_json}")
    phases = [summary.webhooks, summary.repayments, summary.applications]
    if summary.disbursement is not None:
        phases += [summary.disbursement.loans, summary.disbursement.instalments]
    if any(phase.errors for phase in phases):
        raise typer.Exit(1)  # something was not accepted: make demo must not look green


def print_summary(summary: Summary) -> None:
    table = Table(title=f"simulator run {summary.run_id} (via {summary.via})")
    for column in ("phase", "sent", "accepted", "items", "errors", "seconds"):
        table.add_column(column, justify="left" if column in ("phase", "errors") else "right")
    phases = [
        ("webhooks", summary.webhooks),
        ("repayments", summary.repayments),
        ("applications", summary.applications),
    ]
    if summary.disbursement is not None:
        phases += [
            ("loans", summary.disbursement.loans),
            ("instalments", summary.disbursement.instalments),
        ]
    for name, phase in phases:
        errors = ", ".join(f"{status}: {n}" for status, n in phase.errors.items()) or "-"
        table.add_row(
            name,
            str(phase.sent),
            str(phase.accepted),
            str(phase.items_accepted),
            errors,
            f"{phase.seconds:.1f}",
        )
    console.print(table)
    console.print(
        f"members {summary.members} of {summary.book_members} (loan book {summary.book});"
        f" history transactions {summary.transactions_sent}"
    )
    if summary.features_wait is not None:
        wait = summary.features_wait
        state = "[green]caught up[/green]" if wait.caught_up else f"[red]lag {wait.lag}[/red]"
        console.print(f"feature store ({wait.group}): {state} after {wait.seconds:.1f}s")
    target = f"{summary.target_rate:.1f}/s" if summary.target_rate else "unpaced"
    achieved = f"{summary.achieved_rate:.1f}/s" if summary.achieved_rate else "-"
    console.print(
        f"rate: target {target}, achieved {achieved},"
        f" max behind schedule {summary.max_schedule_lag_seconds:.3f}s"
    )
    if summary.disbursement is not None:
        d = summary.disbursement
        verdicts = ", ".join(f"{v} {n}" for v, n in d.verdicts.items()) or "none"
        console.print(
            f"decisions: {verdicts}; loans {d.funded} ({d.from_book} from the book,"
            f" {d.synthesized} synthesized{f', shock {d.shock:g}' if d.shock else ''}),"
            f" {d.defaulting} defaulting"
        )
        if d.unsettled:
            console.print(
                f"[yellow]{d.unsettled} applications still in review or undecided after"
                f" {d.decision_wait_seconds:.0f}s: no loan[/yellow]"
            )
    if summary.first_application_id:
        console.print(
            f"applications {summary.first_application_id} .. {summary.last_application_id}"
        )


if __name__ == "__main__":
    app()
