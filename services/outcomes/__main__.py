"""How loans Alama decided turned out: `python -m services.outcomes` joins disbursements and
repayments to the decisions, publishes each loan's outcome on `credit.loan_outcomes` once it is
known and keeps live performance as Prometheus gauges; `report` prints it by bundle and month."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing, start_metrics
from services.outcomes.live import by_month
from services.outcomes.settings import OutcomesSettings
from services.outcomes.wiring import open_store, serve

console = Console()


def run() -> None:
    """Consume decisions, reviews, disbursements and repayments until SIGTERM/SIGINT."""
    settings = OutcomesSettings()
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    start_metrics(settings)
    run_until_signalled(lambda stop: serve(settings, stop), settings.infra.event_loop)


app = service_cli(run, help=__doc__)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command()
def report() -> None:
    """Live performance on matured loans, by tenant, bundle and month of application."""
    settings = OutcomesSettings()

    async def months() -> dict:  # type: ignore[type-arg]
        store = await open_store(settings)
        try:
            return by_month(await store.matured())
        finally:
            await store.pool.close()

    table = Table(
        "tenant", "bundle", "month", "matured", "default rate", "AUC (95% CI)", "KS", "ECE"
    )
    for (tenant, version, month), p in asyncio.run(months()).items():
        auc = f"{_fmt(p.auc.value)} ({_fmt(p.auc.low)} to {_fmt(p.auc.high)})"
        table.add_row(
            tenant,
            version,
            month,
            str(p.matured),
            _fmt(p.default_rate),
            auc,
            _fmt(p.ks.value),
            _fmt(p.ece.value),
        )
    console.print(table)


if __name__ == "__main__":
    app()
