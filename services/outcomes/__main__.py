"""How loans Alama decided turned out: `python -m services.outcomes` joins disbursements and
repayments to the decisions, publishes each loan's outcome on `credit.loan_outcomes` once it is
known, keeps live performance as Prometheus gauges, raises performance alerts for the retrainer
and compares a challenger in shadow with the champion; `report` prints live performance by
bundle and month, `shadow` prints the shadow comparison."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing
from services.outcomes.live import by_month
from services.outcomes.performance import Interval
from services.outcomes.settings import OutcomesSettings
from services.outcomes.shadow import Comparison
from services.outcomes.shadow_report import comparisons
from services.outcomes.wiring import open_store, serve

console = Console()


def run() -> None:
    """Consume decisions, reviews, disbursements and repayments until SIGTERM/SIGINT; /metrics
    and the shadow comparison on the metrics port (served by `serve`, which reads the store)."""
    settings = OutcomesSettings()
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
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


def _interval(i: Interval) -> str:
    if i.low is None or i.high is None:
        return _fmt(i.value)
    return f"{_fmt(i.value)} ({_fmt(i.low)} to {_fmt(i.high)})"


def _print_comparison(c: Comparison) -> None:
    console.rule(f"{c.tenant_id}: {c.challenger} (challenger) beside {c.champion} (champion)")
    summary = Table("measure", "champion", "challenger", title="On the applications both scored")
    summary.add_row("applications", str(c.paired), str(c.paired))
    summary.add_row("band agreement", _fmt(c.agreement), "")
    summary.add_row("PSI of the PD (champion's deciles)", "", _fmt(c.psi))
    summary.add_row("mean PD", _fmt(c.champion_mean_pd), _fmt(c.challenger_mean_pd))
    summary.add_row(
        "approval rate", _fmt(c.champion_approval_rate), _fmt(c.challenger_approval_rate)
    )
    summary.add_row("matured loans (defaults)", f"{c.matured} ({c.defaults})", "")
    summary.add_row(
        "AUC (95% CI)",
        _interval(c.champion_on_matured.auc),
        _interval(c.challenger_on_matured.auc),
    )
    summary.add_row(
        "ECE (95% CI)",
        _interval(c.champion_on_matured.ece),
        _interval(c.challenger_on_matured.ece),
    )
    console.print(summary)
    switches = Table("champion \\ challenger", *c.switches, title="Band switches (applications)")
    for band, row in c.switches.items():
        switches.add_row(band, *(str(n) for n in row.values()))
    console.print(switches)
    for f in c.fairness:
        table = Table(
            "group",
            "n",
            "approval: champion",
            "challenger",
            "good approved: champion",
            "challenger",
            title=f"Fairness by {f.attribute}",
        )
        for group, n in f.applications.items():
            table.add_row(
                group,
                str(n),
                _fmt(f.champion.approval_rate.get(group)),
                _fmt(f.challenger.approval_rate.get(group)),
                _fmt(f.champion.good_approval_rate.get(group)),
                _fmt(f.challenger.good_approval_rate.get(group)),
            )
        table.add_row(
            "disparate impact",
            "",
            _fmt(f.champion.disparate_impact),
            _fmt(f.challenger.disparate_impact),
        )
        table.add_row(
            "equal opportunity diff.",
            "",
            "",
            "",
            _fmt(f.champion.equal_opportunity),
            _fmt(f.challenger.equal_opportunity),
        )
        console.print(table)


@app.command()
def shadow() -> None:
    """The challenger in shadow against the champion: agreement, band switches, PSI, AUC and
    ECE on matured loans, fairness by group (the page /shadow on the metrics port shows the
    same)."""
    settings = OutcomesSettings()

    async def found() -> list[Comparison]:
        store = await open_store(settings)
        try:
            return await comparisons(store)
        finally:
            await store.pool.close()

    results = asyncio.run(found())
    if not results:
        console.print("No challenger has been shadowed yet.")
    for c in results:
        _print_comparison(c)


if __name__ == "__main__":
    app()
