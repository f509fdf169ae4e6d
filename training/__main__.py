"""`python -m training`: import or generate a loan book, load it into Feast, train, evaluate,
export, report.

`make train PROFILE=quick` runs `all` on the synthetic world; `make train SOURCE=csv:DIR` (or
`parquet:DIR`, `home-credit:DIR`) imports a lender's export first and trains on it. Each step
can also be run on its own, in order, because each one leaves its result on disk (loan book,
Feast tables, run checkpoint, bundle). The profile sets the run's size and effort; the source
sets the data.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import pickle
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.common.members import DEV_TENANT, TENANT_PATTERN
from services.common.settings import DEV_MODE_VARIABLE, InfraSettings
from training import paths
from training.contract import LoanBook
from training.importer import ImportResult
from training.profiles import Profile, get_profile

if TYPE_CHECKING:
    from training.pipeline import TrainedModels
    from training.promotion import Verdict
    from training.registry import Registry
    from training.registry_events import Recorded, RegistrySettings

console = Console()
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _quiet_libraries() -> None:
    """Library warnings and chatter go to artifacts/logs/training.log (see library_output)."""
    from training.library_output import route_library_output

    route_library_output()


ProfileOption = Annotated[
    str, typer.Option("--profile", "-p", help="tiny, small, quick, full or xl (1,000,000 members)")
]
ChunkOption = Annotated[
    int,
    typer.Option(
        "--members-per-chunk",
        help="members whose feature snapshots are computed and written at once (bounds memory)",
    ),
]
QueryOption = Annotated[
    int,
    typer.Option(
        "--applications-per-query",
        help="applications per point-in-time query to Feast (bounds memory)",
    ),
]
WorkersOption = Annotated[
    int, typer.Option("--load-workers", help="processes computing feature snapshots at once")
]
MaterializeOption = Annotated[
    bool,
    typer.Option(
        help="write each member's latest features to the Redis online store, chunk by chunk "
        "(off: a training-only run, the online store keeps what it had)"
    ),
]
MEMBERS_PER_CHUNK = 50_000  # training.feature_tables.MEMBERS_PER_CHUNK (kept light to import)
APPLICATIONS_PER_QUERY = 100_000  # training.feature_tables.APPLICATIONS_PER_QUERY
LOAD_WORKERS = 2  # training.feature_tables.LOAD_WORKERS
SourceOption = Annotated[
    str,
    typer.Option(
        "--source",
        "-s",
        help="synthetic (the profile's world), csv:DIR, parquet:DIR, home-credit:DIR, or "
        "book:NAME (a loan book imported before)",
    ),
]
IMPORT_KINDS = ("csv", "parquet", "home-credit")
#: the run's file naming the bundle `export` last wrote (what `track` registers)
EXPORTED_BUNDLE = "bundle_version.txt"


def _echo(line: str) -> None:
    console.print(f"[cyan]•[/] {line}")


def _fail(message: str) -> NoReturn:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code=1)


def book_dir(source: str, profile: Profile) -> Path:
    """Where the loan book a `--source` names lives under artifacts/loanbooks/."""
    if source == "synthetic":
        return paths.synthetic_book_dir(profile)
    kind, _, rest = source.partition(":")
    if kind == "book" and rest:
        return paths.LOAN_BOOKS / rest
    if kind in IMPORT_KINDS and rest:
        return paths.LOAN_BOOKS / f"{kind}-{Path(rest).resolve().name}"
    raise typer.BadParameter(
        f"unknown source {source!r}: use synthetic, csv:DIR, parquet:DIR, home-credit:DIR or "
        "book:NAME",
        param_hint="--source",
    )


def run_name(source: str, profile: str) -> str:
    if source == "synthetic":
        return profile
    return f"{book_dir(source, get_profile(profile)).name}-{profile}"


def run_dir(profile: str, source: str = "synthetic") -> Path:
    return paths.ARTIFACTS / "runs" / run_name(source, profile)


def _checkpoint(profile: str, source: str) -> Path:
    return run_dir(profile, source) / "trained.pkl"


def _book(source: str, profile: Profile) -> LoanBook:
    folder = book_dir(source, profile)
    if not (folder / "loanbook.json").exists():
        hint = "`generate`" if source == "synthetic" else f"`import` (or `all --source {source}`)"
        raise typer.BadParameter(f"no loan book at {folder}; run {hint} first")
    from training.partitions import load_book

    return load_book(folder)


def _load_trained(profile: str, source: str) -> TrainedModels:
    from training import pipeline

    path = _checkpoint(profile, source)
    if not path.exists():
        raise typer.BadParameter(f"no trained run for {run_name(source, profile)!r}; run `train`")
    with path.open("rb") as f:
        state = pickle.load(f)  # our own checkpoint, written by `train` below
    state["book"] = _book(source, get_profile(profile))
    return pipeline.TrainedModels(**state)


@app.command()
def generate(profile: ProfileOption = "quick", force: bool = False) -> None:
    """Generate the synthetic SACCO world and its loan book (reused for the same seed and size)."""
    from training import pipeline

    pipeline.synthetic_book(get_profile(profile), force=force, echo=_echo)


@app.command(name="import")
def import_(
    kind: Annotated[str, typer.Option("--source", "-s", help="csv, parquet or home-credit")],
    folder: Annotated[Path, typer.Argument(help="the folder holding the export's files")],
    name: Annotated[str | None, typer.Option(help="loan book name (default: KIND-FOLDER)")] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(help="the data's cut-off instant (default: loanbook.json's, else now)"),
    ] = None,
    assume_timezone: Annotated[
        str | None,
        typer.Option(help="time zone of timestamps written without one, e.g. Africa/Nairobi"),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="also write the violations as JSON here")
    ] = None,
    destination: Annotated[
        Path | None,
        typer.Option(help="where the loan book goes (default: artifacts/loanbooks/NAME)"),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            help="the SACCO (tenant) whose book it is: its members' features are kept under"
            " it, and only its decisions read them (default in development mode: the"
            f" development tenant, {DEV_TENANT})"
        ),
    ] = None,
) -> None:
    """Validate a lender's export against the data contract and import it, all or nothing."""
    from training.importer import ImportFailed

    if kind not in IMPORT_KINDS:
        _fail(f"--source must be one of {', '.join(IMPORT_KINDS)}, not {kind!r}")
    if not folder.is_dir():
        _fail(f"{folder}: no such folder")
    destination = destination or paths.LOAN_BOOKS / (name or f"{kind}-{folder.resolve().name}")
    owner = _tenant(tenant)
    try:
        result = import_book(kind, folder, destination, cutoff, assume_timezone, owner)
    except ImportFailed as failed:
        _show_violations(failed, report)
        raise typer.Exit(code=1) from None
    except ValueError as exc:
        _fail(str(exc))
    rows = sum(result.rows.values())
    _echo(
        f"imported {rows:,} rows ({', '.join(f'{k} {v:,}' for k, v in result.rows.items())}) "
        f"into {result.folder} in {result.seconds:.1f}s: {result.rows_per_second:,.0f} rows/s, "
        f"peak memory {result.peak_memory_mb:,.0f} MB"
    )


def import_book(
    kind: str,
    folder: Path,
    destination: Path,
    cutoff: str | None = None,
    assume_timezone: str | None = None,
    tenant: str = DEV_TENANT,
) -> ImportResult:
    """Run one import with a live row count per table; returns the importer's ImportResult."""
    from training import importer

    stamp = None
    if cutoff is not None:
        stamp = pd.Timestamp(cutoff)
    elif (folder / "loanbook.json").exists():
        stamp = pd.Timestamp(json.loads((folder / "loanbook.json").read_text())["cutoff"])
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stdout.isatty(),
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=None)
            bar.advance(tasks[table], rows)

        if kind == "home-credit":
            from training.sources.home_credit import import_home_credit

            return import_home_credit(folder, destination, progress=progress, tenant=tenant)
        inputs = (importer.csv_inputs if kind == "csv" else importer.parquet_inputs)(folder)
        return importer.import_tables(
            inputs,
            destination,
            source=f"{kind}:{folder.resolve().name}",
            cutoff=stamp,
            assume_tz=assume_timezone,
            progress=progress,
            meta={"tenant": tenant},
        )


def _tenant(option: str | None) -> str:
    """The tenant an import is for: named, or the development tenant in development mode only
    (a SACCO's real book filed under the development tenant would serve no one)."""
    if option is not None:
        if not re.fullmatch(TENANT_PATTERN, option):
            _fail(f"--tenant {option!r} must match {TENANT_PATTERN}")
        return option
    if os.environ.get(DEV_MODE_VARIABLE, "").lower() in {"1", "true", "yes", "on"}:
        return DEV_TENANT
    _fail(f"--tenant is required (the SACCO whose book this is) unless {DEV_MODE_VARIABLE}=1")


def _show_violations(failed: Exception, report: Path | None) -> None:
    violations = failed.violations  # type: ignore[attr-defined]
    table = Table(title=f"{violations.total:,} violation(s) of the data contract; nothing written")
    for heading in ("table", "column", "reason", "count"):
        table.add_column(heading, overflow="fold")
    for (name, column, reason), count in violations.counts.items():
        table.add_row(name, column or "", reason, f"{count:,}")
    console.print(table)
    for examples in violations.examples.values():
        for v in examples:
            console.print(f"  {v.text()}", highlight=False, markup=False)
    if report is not None:
        report.write_text(json.dumps(violations.to_dict(), indent=2, default=str) + "\n")
    first = next(iter(violations.examples.values()))[0]
    console.print(f"[bold red]error:[/] {first.text()}", highlight=False)


@app.command(name="export-contract")
def export_contract(
    folder: Annotated[Path, typer.Argument(help="where to write the contract CSVs")],
    profile: ProfileOption = "quick",
    source: SourceOption = "synthetic",
) -> None:
    """Write a loan book as contract CSVs, as a lender would export it (the synthetic world's by
    default): the round trip back through `import` must train to the same model."""
    from training import pipeline
    from training.importer import write_csv

    p = get_profile(profile)
    book = pipeline.synthetic_book(p, echo=_echo) if source == "synthetic" else _book(source, p)
    rows = write_csv(book, folder)
    _echo(f"wrote {', '.join(f'{k} {v:,}' for k, v in rows.items())} rows to {folder}")


@app.command()
def contract(
    out: Annotated[Path, typer.Option(help="where to write the page")] = Path(
        "docs/data-contract.md"
    ),
) -> None:
    """Write docs/data-contract.md from the contract's code (the one definition)."""
    from training.contract_doc import render

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    _echo(f"wrote {out}")


@app.command()
def load(
    profile: ProfileOption = "quick",
    source: SourceOption = "synthetic",
    members_per_chunk: ChunkOption = MEMBERS_PER_CHUNK,
    load_workers: WorkersOption = LOAD_WORKERS,
    materialize: MaterializeOption = True,
) -> None:
    """Write feature snapshots to the Feast offline store (PostgreSQL) and run `feast apply`."""
    from training import pipeline

    pipeline.load_into_feast(
        InfraSettings(),
        _book(source, get_profile(profile)),
        echo=_echo,
        members_per_chunk=members_per_chunk,
        workers=load_workers,
        materialize=materialize,
    )


@app.command()
def train(
    profile: ProfileOption = "quick",
    source: SourceOption = "synthetic",
    applications_per_query: QueryOption = APPLICATIONS_PER_QUERY,
) -> None:
    """Fit the baseline, LightGBM, the LSTM, the ensemble, calibration and decision bands."""
    from training import pipeline

    p = get_profile(profile)
    trained = pipeline.train(
        InfraSettings(),
        p,
        _book(source, p),
        echo=_echo,
        applications_per_query=applications_per_query,
    )
    state = {k: v for k, v in trained.__dict__.items() if k != "book"}
    run_dir(profile, source).mkdir(parents=True, exist_ok=True)
    with _checkpoint(profile, source).open("wb") as f:
        pickle.dump(state, f)


@app.command()
def evaluate(profile: ProfileOption = "quick", source: SourceOption = "synthetic") -> None:
    """Metrics on the test and out-of-time splits, and fairness, into the run's metrics.json."""
    from training import pipeline

    metrics = pipeline.evaluate(_load_trained(profile, source))
    (run_dir(profile, source) / "metrics.json").write_text(
        json.dumps(metrics, indent=2, default=float)
    )
    for split in ("test", "out_of_time"):
        if not metrics[split]:
            _echo(f"no {split.replace('_', '-')} split for this source")
            continue
        table = Table(title=f"{split.replace('_', '-')} split", title_justify="left")
        table.add_column("model")
        names = list(next(iter(metrics[split].values())))
        for name in names:
            table.add_column(name, justify="right")
        for model, values in metrics[split].items():
            table.add_row(model, *(f"{values[name]:.4f}" for name in names))
        console.print(table)


@app.command()
def export(
    profile: ProfileOption = "quick",
    source: SourceOption = "synthetic",
    promote: Annotated[
        bool,
        typer.Option(
            help="also point artifacts/bundles/current at it (tooling that reads the link; which"
            " model decides is the registry's champion alias: `track`, `promote`)"
        ),
    ] = False,
) -> None:
    """Write the versioned bundle (ONNX models, manifest, drift reference)."""
    from training.export import write_bundle

    metrics = json.loads((run_dir(profile, source) / "metrics.json").read_text())
    folder = write_bundle(_load_trained(profile, source), metrics, promote=promote)
    (run_dir(profile, source) / EXPORTED_BUNDLE).write_text(folder.name + "\n")
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest["ensemble_refused"]:
        console.print(
            f"[bold yellow]the ensemble does not ship:[/] {manifest['ensemble_refused']}; the "
            "bundle serves the calibrated plain logistic regression",
            highlight=False,
        )
    _echo(f"bundle written to {folder}" + (" and linked as current" if promote else ""))


@app.command()
def report(profile: ProfileOption = "quick", source: SourceOption = "synthetic") -> None:
    """report.md with plots, the model card and the real-data benchmark, in the bundle."""
    from training.report import write_report

    # into the bundle this run exported, not `current` (the champion's, when this is a challenger)
    folder = write_report(_load_trained(profile, source), bundle=_exported_bundle(profile, source))
    _echo(f"report and model card written to {folder}")


ByOption = Annotated[
    str, typer.Option("--by", help="who asks (recorded in the audit chain with the change)")
]


def _exported_bundle(profile: str, source: str) -> Path:
    """The bundle `export` last wrote for this run (`current` for a run exported before)."""
    from training import bundles

    marker = run_dir(profile, source) / EXPORTED_BUNDLE
    if marker.exists():
        return bundles.BUNDLES / marker.read_text().strip()
    return bundles.BUNDLES / "current"


@app.command()
def track(
    profile: ProfileOption = "quick",
    source: SourceOption = "synthetic",
    by: Annotated[
        str | None, typer.Option("--by", help="who registers it (default: the OS user)")
    ] = None,
    trigger: Annotated[
        str, typer.Option(help="why it was trained: drift, performance, schedule or manual")
    ] = "manual",
) -> None:
    """Log the run to MLflow and register its bundle: the first champion when there is none,
    else the challenger (in shadow; `promote` puts it through the gate)."""
    from training.tracking import track_run

    bundle = _exported_bundle(profile, source)
    if not (bundle / "manifest.json").exists():
        _fail(f"no bundle at {bundle}; run `export` first")
    metrics = json.loads((run_dir(profile, source) / "metrics.json").read_text())
    version = track_run(_load_trained(profile, source), metrics, bundle)
    _register(version, by or getpass.getuser(), trigger)


def _registry() -> Registry:
    from services.common.model_registry import REGISTERED_MODEL, registry_client
    from training.registry import Registry

    return Registry(REGISTERED_MODEL, registry_client())


def _link_current(registry: Registry, version: str | None) -> None:
    """Point artifacts/bundles/current at the champion's bundle, for tooling that still reads
    the link (serving follows the alias)."""
    from services.common.model_registry import ModelLocator
    from training import bundles

    bundle = registry.bundle_of(version) if version else None
    if not bundle:
        return
    try:
        folder = ModelLocator(registry.client, bundle_root=bundles.BUNDLES).folder(bundle)
        bundles.promote_bundle(folder.name, bundles.BUNDLES)
    except (LookupError, OSError) as exc:
        console.print(f"[yellow]warning:[/] artifacts/bundles/current not updated: {exc}")


def _recorded_note(recorded: Recorded, settings: RegistrySettings) -> None:
    from rich.markup import escape

    if recorded.acknowledged:
        _echo(f"recorded on {settings.topic} (for the audit chain)")
        return
    console.print(
        f"[bold yellow]not yet recorded:[/] {escape(recorded.problem)}; the change waits in "
        f"{settings.outbox} ({recorded.pending} pending) and is published by the next registry "
        "command that reaches the broker (`python -m training registry`)",
        highlight=False,
    )


def _register(version: str, by: str, trigger: str) -> None:
    from training.promotion import register_trained
    from training.registry import PROMOTED
    from training.registry_events import RegistrySettings

    registry, settings = _registry(), RegistrySettings()
    change, recorded = register_trained(registry, version, by, trigger, settings)
    if change.action == PROMOTED:
        _link_current(registry, version)
        _echo(
            f"MLflow: registered {registry.model_name} version {version} "
            f"(bundle {change.bundle_version}) as the first champion"
        )
    else:
        _echo(
            f"MLflow: registered {registry.model_name} version {version} "
            f"(bundle {change.bundle_version}) as the challenger; champion stays version "
            f"{change.replaced_version} (promote it with `python -m training promote --by NAME`)"
        )
    _recorded_note(recorded, settings)


def _show_checks(verdict: Verdict) -> None:
    from rich.markup import escape

    result = verdict.result
    title = (
        f"gate: version {verdict.challenger} against champion {verdict.champion} "
        f"({', '.join(f'{k} {v:,} rows' for k, v in verdict.rows.items())})"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("check", no_wrap=True)  # the names a refusal cites, whole
    for heading in ("value", "bound", "95% CI", "", "detail"):
        table.add_column(heading, overflow="fold")
    for check in result.checks:
        interval = check.interval
        table.add_row(
            escape(check.name),
            "n/a" if check.value is None else f"{check.value:.4f}",
            str(check.threshold),
            "n/a" if interval is None else f"{interval[0]:.4f} to {interval[1]:.4f}",
            "[green]pass[/]" if check.passed else "[bold red]FAIL[/]",
            escape(check.detail),
        )
    console.print(table)


@app.command(name="promote")
def promote_version(
    by: ByOption,
    version: Annotated[
        str | None, typer.Option(help="the registered version (default: the challenger alias)")
    ] = None,
    outcomes_url: Annotated[
        str | None,
        typer.Option(
            help="the outcomes service: also weigh matured loans both models scored "
            "(GET URL/shadow/pairs.json)"
        ),
    ] = None,
    min_matured_loans: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="with --outcomes-url: judge only on at least this many matured loans"
            " [default: training.shadow_pairs.MIN_MATURED_LOANS, 300]",
        ),
    ] = None,
    min_matured_defaults: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="with --outcomes-url: and at least this many defaults among them"
            " [default: MIN_MATURED_DEFAULTS, 30]",
        ),
    ] = None,
) -> None:
    """Move the champion alias to the challenger only if the gate holds; a refusal names the
    failed checks (exit 3). Recorded on model.registry (the audit chain) with who asked. With
    --outcomes-url and too few matured loans yet, nothing is judged or moved (exit 4)."""
    from rich.markup import escape

    from services.common.model_registry import ModelLocator
    from training import bundles, promotion
    from training.registry import CHAMPION, PromotionRefused
    from training.registry_events import BrokerUnreachable, RegistrySettings
    from training.shadow_pairs import (
        MIN_MATURED_DEFAULTS,
        MIN_MATURED_LOANS,
        NotEnoughOutcomes,
        OutcomesUnavailable,
    )

    registry, settings = _registry(), RegistrySettings()
    _flush_outbox(settings, registry)
    try:
        challenger = promotion.resolve_challenger(registry, version)
        champion = registry.version_of(CHAMPION)
        if champion == challenger:
            _fail(f"version {challenger} is the champion already")
        verdict = None
        if champion is not None:
            verdict = promotion.gate_verdict(
                registry,
                ModelLocator(registry.client, bundle_root=bundles.BUNDLES),
                challenger,
                champion,
                outcomes_url=outcomes_url,
                min_matured_loans=(
                    MIN_MATURED_LOANS if min_matured_loans is None else min_matured_loans
                ),
                min_matured_defaults=(
                    MIN_MATURED_DEFAULTS if min_matured_defaults is None else min_matured_defaults
                ),
            )
            _show_checks(verdict)
            if not verdict.result.passed:
                change, recorded = promotion.record_refusal(registry, verdict, by, settings)
                _recorded_note(recorded, settings)
                names = escape(", ".join(c.name for c in verdict.result.failed))
                console.print(f"[bold red]refused:[/] {names} failed", highlight=False)
                console.print(change.reason, highlight=False, markup=False)
                raise typer.Exit(code=3)
        change = promotion.promote(registry, challenger, by, verdict, settings)
    except NotEnoughOutcomes as exc:
        console.print(f"[yellow]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(code=4) from None
    except (promotion.PromotionError, OutcomesUnavailable, PromotionRefused) as exc:
        _fail(str(exc))
    except BrokerUnreachable as exc:
        _fail(f"{exc}: nothing moved (a promotion is not made unless it can be recorded)")
    except promotion.ChangeNotRecorded as exc:
        _link_current(registry, exc.change.model_version)
        _fail(
            f"version {exc.change.model_version} is champion but its record was not "
            f"acknowledged ({exc}); it waits in {settings.outbox} and is published by the next "
            "registry command that reaches the broker"
        )
    _link_current(registry, change.model_version)
    _echo(
        f"version {change.model_version} (bundle {change.bundle_version}) is champion "
        f"({change.reason}); previous champion {change.replaced_version or 'none'}; "
        f"recorded on {settings.topic} as asked by {by}"
    )


@app.command(name="rollback")
def rollback_champion(by: ByOption) -> None:
    """Back to the previous champion in one command, recorded with who asked."""
    from training import promotion
    from training.registry import PromotionRefused
    from training.registry_events import BrokerUnreachable, RegistrySettings

    registry, settings = _registry(), RegistrySettings()
    try:
        change = promotion.rollback(registry, by, settings)
    except PromotionRefused as exc:
        _fail(str(exc))
    except BrokerUnreachable as exc:
        _fail(f"{exc}: nothing moved (a rollback is not made unless it can be recorded)")
    except promotion.ChangeNotRecorded as exc:
        _link_current(registry, exc.change.model_version)
        _fail(
            f"rolled back to version {exc.change.model_version} but its record was not "
            f"acknowledged ({exc}); it waits in {settings.outbox} and is published by the next "
            "registry command that reaches the broker"
        )
    _link_current(registry, change.model_version)
    _echo(
        f"rolled back: version {change.model_version} (bundle {change.bundle_version}) is "
        f"champion again, version {change.replaced_version} is previous-champion; recorded on "
        f"{settings.topic} as asked by {by}"
    )


def _flush_outbox(settings: RegistrySettings, registry: Registry) -> None:
    """Settle what a command that died left intended, publish changes earlier commands could
    not; say so when some still wait."""
    from rich.markup import escape

    from training.promotion import settle_intents
    from training.registry_events import Outbox, flush_outbox

    made = settle_intents(registry, Outbox(settings.outbox))
    if made:
        _echo(f"completed {len(made)} registry change(s) an interrupted command had made")
    recorded = asyncio.run(flush_outbox(settings))
    if not recorded.acknowledged:
        console.print(
            f"[bold yellow]{recorded.pending} registry change(s) still wait in "
            f"{settings.outbox}:[/] {escape(recorded.problem)}",
            highlight=False,
        )


@app.command(name="registry")
def show_registry() -> None:
    """The aliases (champion, previous-champion, challenger) and their bundles; publishes
    registry changes an earlier command could not."""
    from training.registry import CHALLENGER, CHAMPION, PREVIOUS
    from training.registry_events import Outbox, RegistrySettings

    registry, settings = _registry(), RegistrySettings()
    _flush_outbox(settings, registry)
    table = Table(title=f"registered model {registry.model_name}", title_justify="left")
    for heading in ("alias", "version", "bundle"):
        table.add_column(heading)
    for alias in (CHAMPION, PREVIOUS, CHALLENGER):
        version = registry.version_of(alias)
        bundle = registry.bundle_of(version) if version else None
        table.add_row(alias, version or "-", bundle or "-")
    console.print(table)
    pending = len(Outbox(settings.outbox).pending())
    if pending:
        console.print(f"{pending} change(s) not yet recorded (outbox {settings.outbox})")


@app.command(name="all")
def run_all(
    profile: ProfileOption = "quick",
    source: SourceOption = "synthetic",
    members_per_chunk: ChunkOption = MEMBERS_PER_CHUNK,
    applications_per_query: QueryOption = APPLICATIONS_PER_QUERY,
    load_workers: WorkersOption = LOAD_WORKERS,
    materialize: MaterializeOption = True,
    tenant: Annotated[
        str | None,
        typer.Option(help="the SACCO whose book an imported source is (see `import --tenant`)"),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="who registers it (default: the OS user)")
    ] = None,
    trigger: Annotated[
        str, typer.Option(help="why it was trained: drift, performance, schedule or manual")
    ] = "manual",
) -> None:
    """Every step in order: generate or import, load, train, evaluate, export, report, track
    (the first model becomes champion; later ones the challenger, promoted only by the gate)."""
    if source == "synthetic":
        generate(profile)
    else:
        kind, _, rest = source.partition(":")
        if kind in IMPORT_KINDS:
            import_(kind, Path(rest), tenant=tenant)
        else:
            _book(source, get_profile(profile))
    load(profile, source, members_per_chunk, load_workers, materialize)
    train(profile, source, applications_per_query)
    evaluate(profile, source)
    export(profile, source, promote=False)
    report(profile, source)
    track(profile, source, by, trigger)


@app.command()
def tabular(
    csv_file: Annotated[Path, typer.Option("--csv", help="the table: one row per loan")],
    target: Annotated[str, typer.Option(help="the outcome column")],
    protected: Annotated[
        list[str] | None, typer.Option(help="audit-only column (repeatable); never an input")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="the target value meaning default (needed unless 0/1)")
    ] = None,
    folds: Annotated[int, typer.Option(help="stratified cross-validation folds")] = 5,
    out: Annotated[
        Path | None, typer.Option(help="output folder [default: artifacts/tabular/<file stem>]")
    ] = None,
    cost: Annotated[
        Path | None, typer.Option(help="business cost TOML [default: config/business_cost.toml]")
    ] = None,
    amount: Annotated[
        str | None, typer.Option(help="loan amount column (KES) for the business cost")
    ] = None,
    delimiter: Annotated[str, typer.Option(help="the CSV field delimiter")] = ",",
    seed: int = 7,
    promote: Annotated[
        bool,
        typer.Option(
            help="also copy the bundle to artifacts/bundles/<version> and point `current` at it,"
            " so the running services serve it (applications then carry the columns in"
            " `attributes`)"
        ),
    ] = False,
) -> None:
    """Any CSV with a target column: cross-validated model choice, report and tabular bundle."""
    from rich.markup import escape

    from training.tabular import TabularInputError, run_command
    from training.tabular import promote as promote_tabular

    try:
        folder, run = run_command(
            csv_file,
            target,
            protected or [],
            positive=positive,
            folds=folds,
            out=out,
            cost_file=cost,
            amount=amount,
            delimiter=delimiter,
            seed=seed,
            echo=_echo,
        )
    except TabularInputError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=2) from None
    selection = run.selection
    for name, scores in selection.candidates.items():
        _echo(f"{name:20s} {folds}-fold AUC {scores.mean['auc']:.4f} ± {scores.sd['auc']:.4f}")
    verdict = (
        f"beats {selection.simple} by {selection.margin:+.4f} AUC "
        f"(standard error {selection.standard_error:.4f})"
        if selection.winner != selection.simple
        else "no candidate beat it beyond the noise"
    )
    _echo(f"ships {selection.winner}: {verdict}")
    _echo(f"report and bundle written to {folder}")
    if promote:
        _echo(f"promoted {promote_tabular(folder)}: the running services now serve it")


if __name__ == "__main__":
    app()
