"""`make demo`: the whole system end to end on this machine, with a live view and a summary.

Servers up, a promoted model (trained on the quick profile when none exists), the eight services as
supervised processes, then the simulator plays core banking and the mobile-money provider at a
steady rate while the terminal shows what the services report. Every number on screen is read
back from the services themselves (their Prometheus endpoints, the audit chain, the gateway's
API, the trace file), never from the simulator's own counts. The simulator plays the model's
profile's synthetic loan book; `ALAMA_SIMULATOR_BOOK=NAME` plays an imported one instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from infra import local, supervisor
from services.audit.reader import AuditReader
from services.common import vocabulary
from services.common.members import DEV_TENANT
from services.common.settings import InfraSettings, service_port
from services.common.topics import CREDIT_DECISIONS, CREDIT_EXPLANATIONS

console = Console()
REPO = local.REPO
BUNDLE = REPO / "artifacts" / "bundles" / "current"
GATEWAY = os.environ.get("ALAMA_DEMO_GATEWAY", f"http://127.0.0.1:{service_port(8080)}")
API_KEY = {"X-API-Key": os.environ.get("ALAMA_DEMO_API_KEY", "dev-partner-key")}
METRICS = {
    # the gateway serves its metrics on its operator port, never the public one
    "gateway": f"http://127.0.0.1:{service_port(9101)}/metrics",
    "feature_store": f"http://127.0.0.1:{service_port(9102)}/metrics",
    "scoring": f"http://127.0.0.1:{service_port(9103)}/metrics",
    "explanation": f"http://127.0.0.1:{service_port(9104)}/metrics",
    "audit": f"http://127.0.0.1:{service_port(9105)}/metrics",
    "drift": f"http://127.0.0.1:{service_port(9106)}/metrics",
    "outcomes": f"http://127.0.0.1:{service_port(9107)}/metrics",  # live AUC and ECE
    # the console's metrics are on a port of their own, off the pages staff reach
    "console": f"http://127.0.0.1:{service_port(9109)}/metrics",
}
AUDIT_SCHEMA = "audit"
BANDS = vocabulary.BANDS.names


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _run(command: list[str], what: str) -> None:
    """Run a set-up command with its output streaming to the terminal; stop the demo if it fails."""
    console.print(f"[dim]$ {' '.join(command)}[/]")
    result = subprocess.run(command, cwd=REPO)
    if result.returncode != 0:
        console.print(f"[bold red]{what} failed (exit {result.returncode}); see the output above")
        sys.exit(result.returncode)


def _has_champion() -> bool:
    """Whether MLflow's registry names a champion (scoring serves it)."""
    from services.common.model_registry import CHAMPION, ModelLocator, ModelNotFound

    try:
        ModelLocator().by_alias(CHAMPION)
    except ModelNotFound:
        return False
    return True


def ensure_model() -> dict[str, Any]:
    """The promoted bundle's manifest; trains the quick profile first when there is none, or
    when the promoted one predates hashed drift references (drift would refuse it)."""
    manifest_path = BUNDLE / "manifest.json"
    stale = manifest_path.exists() and not (
        json.loads(manifest_path.read_text()).get("reference", {}).get("sha256")
    )
    if stale:
        console.print("the promoted model predates hashed drift references: retraining it")
    if stale or not manifest_path.exists():
        console.print("no usable promoted model: training the quick profile (a few minutes)")
        _run([sys.executable, "-m", "training", "all", "--profile", "quick"], "training")
    elif not _has_champion():
        # a bundle trained before serving followed the registry: make it the first champion
        console.print("the model registry has no champion: registering the promoted model")
        track = [sys.executable, "-m", "training", "track", "--profile", "quick"]
        if subprocess.run(track, cwd=REPO).returncode != 0:
            # no run of this code to register (none kept, or one an older version wrote)
            console.print("the promoted model cannot be registered: training the quick profile")
            _run([sys.executable, "-m", "training", "all", "--profile", "quick"], "training")
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    metrics = json.loads((BUNDLE / "metrics.json").read_text())
    test = metrics.get("test", {})
    shipped = manifest.get("shipped_model", "ensemble")
    auc = test.get("shipped", test.get("ensemble", {})).get("auc")
    oracle = test.get("oracle", {}).get("auc")
    console.print(
        f"model [bold]{manifest['version']}[/] ({shipped})"
        + (f": test AUC {auc:.4f} (oracle {oracle:.4f})" if auc and oracle else "")
    )
    return manifest


# ---------------------------------------------------------------------------------------- live


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    try:
        text = httpx.get(url, timeout=1.0).text
    except httpx.HTTPError:
        return {}
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((dict(sample.labels), float(sample.value)))
    return samples


def _histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile on cumulative (le, count) pairs, in the buckets' unit."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    previous_le, previous_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return previous_le
            width = le - previous_le
            inside = count - previous_count
            return previous_le + width * ((rank - previous_count) / inside if inside else 0.0)
        previous_le, previous_count = le, count
    return previous_le


@dataclass
class Snapshot:
    """What the services report right now."""

    decisions: dict[str, float] = field(default_factory=dict)
    gateway_p50_ms: float | None = None
    gateway_p99_ms: float | None = None
    lag: dict[str, float] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)
    dead_letters: float = 0.0
    audited: int = 0
    explained: int = 0
    pipeline_p50_ms: float | None = None
    pipeline_p99_ms: float | None = None
    run_bands: dict[str, int] = field(default_factory=dict)  # this run's decisions, from audit


def read_metrics(snapshot: Snapshot) -> None:
    scoring = _scrape(METRICS["scoring"])
    snapshot.decisions = defaultdict(float)
    for labels, value in scoring.get("alama_scoring_decisions_total", []):
        snapshot.decisions[labels.get("band", "?")] += value
    gateway = _scrape(METRICS["gateway"])
    buckets: dict[float, float] = defaultdict(float)
    for labels, value in gateway.get("alama_http_request_seconds_bucket", []):
        if labels.get("route", "").startswith("/v1/"):
            buckets[float(labels["le"])] += value
    pairs = list(buckets.items())
    p50, p99 = _histogram_quantile(pairs, 0.5), _histogram_quantile(pairs, 0.99)
    snapshot.gateway_p50_ms = None if p50 is None else p50 * 1e3
    snapshot.gateway_p99_ms = None if p99 is None else p99 * 1e3
    snapshot.lag, snapshot.dead_letters = {}, 0.0
    for service in ("feature_store", "scoring", "explanation", "audit"):
        samples = scoring if service == "scoring" else _scrape(METRICS[service])
        lags = samples.get("alama_consumer_lag", [])
        snapshot.lag[service] = sum(v for _l, v in lags)
        snapshot.dead_letters += sum(
            v
            for labels, v in samples.get("alama_events_consumed_total", [])
            if labels.get("outcome") == "dead_lettered"
        )
    drift = _scrape(METRICS["drift"])
    snapshot.psi = {
        labels["subject"]: value
        for labels, value in drift.get("alama_drift_psi", [])
        if "subject" in labels
    }


async def read_audit(snapshot: Snapshot, infra: InfraSettings, run_id: str) -> None:
    """What the audit chain holds about this run, read through the audit service's reader."""
    prefix = run_id + "-"
    try:
        async with AuditReader.connect(infra.postgres_dsn, AUDIT_SCHEMA) as audit:
            counts = await audit.counts_by_topic(prefix)
            bands = await audit.decision_bands(prefix)
            latencies = await audit.decision_latencies_ms(prefix)
    except asyncpg.UndefinedTableError:
        return  # the audit service has not migrated its schema yet
    snapshot.audited = counts.get(CREDIT_DECISIONS, 0)
    snapshot.explained = counts.get(CREDIT_EXPLANATIONS, 0)
    snapshot.run_bands = {
        band.removeprefix("DECISION_BAND_").lower(): n for band, n in bands.items()
    }
    if latencies:
        p50, p99 = np.percentile(latencies, [50, 99])
        snapshot.pipeline_p50_ms, snapshot.pipeline_p99_ms = float(p50), float(p99)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def render(snapshot: Snapshot, simulator: Any, sent: int) -> Group:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", width=28)
    table.add_column()
    table.add_row("applications sent", f"{sent:,}")
    bands = " · ".join(f"{b} {int(snapshot.decisions.get(b, 0)):,}" for b in BANDS)
    table.add_row("decisions by band (scoring)", bands)
    table.add_row("decisions audited", f"{snapshot.audited:,} (explained {snapshot.explained:,})")
    table.add_row(
        "gateway latency p50 / p99",
        f"{_ms(snapshot.gateway_p50_ms)} / {_ms(snapshot.gateway_p99_ms)}",
    )
    table.add_row(
        "application→audit p50 / p99",
        f"{_ms(snapshot.pipeline_p50_ms)} / {_ms(snapshot.pipeline_p99_ms)}",
    )
    table.add_row("consumer lag", " · ".join(f"{k} {int(v):,}" for k, v in snapshot.lag.items()))
    score_psi = snapshot.psi.get("score")
    band_psi = snapshot.psi.get("band")
    table.add_row(
        "PSI score / band mix",
        ("-" if score_psi is None else f"{score_psi:.3f}")
        + " / "
        + ("-" if band_psi is None else f"{band_psi:.3f}")
        + ("  (drift fills a window first)" if score_psi is None else ""),
    )
    table.add_row("dead letters", f"{int(snapshot.dead_letters):,}")
    return Group(simulator, Panel(table, title="what the services report", border_style="cyan"))


# ------------------------------------------------------------------------------------- phases


async def simulate_live(
    infra: InfraSettings, profile: str, applications: int, rate: float
) -> tuple[Any, Snapshot]:
    """Run the simulator and refresh the live view every second until everything is audited."""
    from simulator.run import LiveStatus, SimulationOptions, simulate
    from simulator.settings import SimulatorSettings

    settings = SimulatorSettings(profile=profile, infra=infra)
    status = LiveStatus()
    snapshot = Snapshot()
    # core banking closes the loop: a loan for each approval, then its instalments (outcomes)
    options = SimulationOptions(
        applications=applications, rate=rate, disburse=True, decision_wait_seconds=15.0
    )
    run = asyncio.create_task(simulate(settings, options, live=status))
    run_id = ""
    deadline: float | None = None
    with Live(render(snapshot, status, 0), console=console, refresh_per_second=2) as live:
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(read_metrics, snapshot)
            sent = sum(p.accepted for p in status.phases if p.name == "applications")
            if run.done():
                summary = run.result()
                run_id = summary.run_id
                await read_audit(snapshot, infra, run_id)
                sent = summary.applications.accepted
                deadline = deadline or time.monotonic() + 120
                done = snapshot.audited >= sent and snapshot.explained >= sent
                live.update(render(snapshot, status, sent))
                if done or time.monotonic() > deadline:
                    return summary, snapshot
            else:
                live.update(render(snapshot, status, sent))


async def example(infra: InfraSettings, run_id: str, trace_file: Path) -> None:
    """One application followed through the API and through its trace."""
    async with AuditReader.connect(infra.postgres_dsn, AUDIT_SCHEMA) as audit:
        decisions = await audit.decisions(run_id + "-", limit=1)
    if not decisions:
        console.print("[red]no decision was audited, so there is no example to show")
        return
    audited = decisions[0]
    async with httpx.AsyncClient(base_url=GATEWAY, headers=API_KEY, timeout=5) as client:
        decision = (await client.get(f"/v1/decisions/{audited.decision_id}")).json()
        explanation = (await client.get(f"/v1/decisions/{audited.decision_id}/explanation")).json()
    console.print(
        f"application [bold]{audited.application_id}[/]: score {decision.get('score')},"
        f" PD {decision.get('probability_of_default', 0):.3f}, band {decision.get('band')}"
    )
    for reason in explanation.get("reasons", [])[:4]:
        console.print(f"  • {reason.get('description')}")
    spans = await asyncio.to_thread(trace_spans, trace_file, audited.trace_id)
    table = Table("service", "span", "start", "ms", title=f"trace {audited.trace_id}")
    spans.sort(key=lambda s: s["start_time"])
    first = spans[0]["start_time"] if spans else ""
    for span in spans:
        service = span["resource"]["attributes"].get("service.name", "?")
        start = _iso_seconds(span["start_time"]) - _iso_seconds(first)
        took = _iso_seconds(span["end_time"]) - _iso_seconds(span["start_time"])
        table.add_row(service, span["name"], f"+{start * 1e3:,.1f} ms", f"{took * 1e3:,.2f}")
    console.print(table)


def trace_spans(trace_file: Path, trace_id: str) -> list[dict[str, Any]]:
    """Every span of one trace that the services appended to the trace file."""
    if not trace_file.exists():
        return []
    spans = []
    for line in trace_file.read_text().splitlines():
        span = json.loads(line)
        if span["context"]["trace_id"] == f"0x{trace_id}":
            spans.append(span)
    return spans


def _iso_seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def verify_chain() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "services.audit", "verify"], cwd=REPO, capture_output=True, text=True
    )
    console.print(result.stdout.strip() or result.stderr.strip())
    return result.returncode == 0


def print_summary(
    summary: Any, snapshot: Snapshot, manifest: dict[str, Any], chain_ok: bool
) -> None:
    table = Table(title="what happened", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", manifest["version"])
    table.add_row(
        "mobile-money history",
        f"{summary.transactions_sent:,} transactions in {summary.webhooks.accepted:,} signed"
        f" webhooks; {summary.repayments.accepted:,} repayments",
    )
    table.add_row(
        "applications",
        f"{summary.applications.accepted:,} accepted by the gateway at"
        f" {summary.achieved_rate or 0:.1f}/s (errors: {summary.applications.errors or 'none'})",
    )
    table.add_row("decisions audited", f"{snapshot.audited:,}")
    table.add_row("explanations audited", f"{snapshot.explained:,}")
    table.add_row(
        "this run's decisions by band",
        ", ".join(f"{b} {snapshot.run_bands.get(b, 0):,}" for b in BANDS) + " (audit chain)",
    )
    table.add_row(
        "scoring's counters since start",
        ", ".join(f"{b} {int(snapshot.decisions.get(b, 0)):,}" for b in BANDS)
        + " (include events already on the topics)",
    )
    table.add_row(
        "application→audit latency",
        f"p50 {_ms(snapshot.pipeline_p50_ms)}, p99 {_ms(snapshot.pipeline_p99_ms)}",
    )
    table.add_row("dead letters since start", f"{int(snapshot.dead_letters):,} (all consumers)")
    psi = ", ".join(f"{k} {snapshot.psi[k]:.3f}" for k in ("score", "band") if k in snapshot.psi)
    table.add_row("PSI", psi or "window not full yet")
    table.add_row("audit chain", "verified" if chain_ok else "[red]verification FAILED")
    console.print(table)


#: the demo's risk officer (development mode only: a public password, like the dev API key)
DEMO_OFFICER = ("officer", "dev-only-officer-password")
DEMO_MANAGER = ("manager", "dev-only-manager-password")


async def console_people() -> int:
    """Give the development tenant a risk officer and a credit manager to sign in to the
    console as (kept if there); returns the review items waiting in the tenant's queue."""
    from services.console.people import People, Role
    from services.console.settings import ConsoleSettings
    from services.console.store import CLAIMED, OPEN
    from services.console.wiring import open_store

    settings = ConsoleSettings()
    store = await open_store(settings)
    try:
        people = People(store, settings)
        for (username, password), role in (
            (DEMO_OFFICER, Role.RISK_OFFICER),
            (DEMO_MANAGER, Role.CREDIT_MANAGER),
        ):
            if await store.account(DEV_TENANT, username) is None:
                await people.add(
                    tenant=DEV_TENANT,
                    username=username,
                    display_name=username.title(),
                    role=role,
                    password=password,
                )
        waiting = await store.queue(DEV_TENANT, states=[OPEN, CLAIMED], limit=100_000)
        return len(waiting)
    finally:
        await store.pool.close()


def where_next(trace_file: Path, waiting: int | None = None) -> None:
    console_line = (
        f"review console  http://127.0.0.1:{service_port(8090)} (SACCO {DEV_TENANT}, user"
        f" {DEMO_OFFICER[0]} or {DEMO_MANAGER[0]}, password dev-only-<user>-password)"
        + (f": {waiting:,} applications wait for review" if waiting is not None else "")
    )
    lines = [
        console_line,
        f"API docs        http://127.0.0.1:{service_port(9101)}/docs (the operator port)",
        "metrics         " + ", ".join(METRICS.values()),
        f"model report    {BUNDLE / 'report.md'}",
        f"traces          {trace_file} (one JSON span per line)",
        f"service logs    {supervisor.services_dir()}/<service>.log",
        "audit           .venv/bin/python -m services.audit lookup --application-id <id>",
        "stop everything make down",
    ]
    console.print(Panel("\n".join(lines), title="where to look next", border_style="green"))


def main() -> int:
    began = time.monotonic()
    infra = InfraSettings()
    _step("1/5 servers")
    local.up()
    _step("2/5 model")
    manifest = ensure_model()
    _step("3/5 services")
    trace_file = local.run_dir() / "traces" / "spans.jsonl"
    os.environ["ALAMA_TRACE_FILE"] = str(trace_file)
    try:
        supervisor.down()  # a fresh start, so every service writes to this run's trace file
        supervisor.up()
    except supervisor.SupervisorError as exc:
        console.print(f"[bold red]{exc}")
        return 1
    applications = int(os.environ.get("ALAMA_DEMO_APPLICATIONS", "1200"))
    rate = float(os.environ.get("ALAMA_DEMO_RATE", "10"))
    _step(f"4/5 simulator: {applications:,} applications at {rate:g}/s with their history")
    summary, snapshot = asyncio.run(
        simulate_live(infra, str(manifest.get("profile", "quick")), applications, rate)
    )
    _step("5/5 summary")
    read_metrics(snapshot)
    asyncio.run(read_audit(snapshot, infra, summary.run_id))
    chain_ok = verify_chain()
    print_summary(summary, snapshot, manifest, chain_ok)
    if summary.disbursement is not None:
        d = summary.disbursement
        console.print(
            f"core banking funded {d.funded:,} approved applications ({d.defaulting:,} of the"
            f" loans go 90+ days late within 12 months); the outcomes service judges each loan:"
            " live AUC and equal opportunity on the console's oversight page,"
            " `python -m services.outcomes report` in a terminal"
        )
    asyncio.run(example(infra, summary.run_id, trace_file))
    try:
        waiting: int | None = asyncio.run(console_people())
    except Exception as exc:  # the console is a viewer of the run: report, don't fail the demo
        console.print(f"[yellow]console accounts not set up: {exc}")
        waiting = None
    where_next(trace_file, waiting)
    console.print(f"demo finished in {time.monotonic() - began:,.0f} s; the services keep running")
    complete = snapshot.audited >= summary.applications.accepted > 0
    return 0 if complete and chain_ok else 1


if __name__ == "__main__":
    sys.exit(main())
