"""Live performance from the store, on a timer: per tenant, bundle and month of application,
the measures of `performance` set as gauges, and each bundle's training reference read from its
metrics.json (so the alert rules can compare). Also the table `report` prints. The bootstrap is
CPU work: it runs in a worker thread so the loop keeps consuming and serving scrapes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from services.common.vocabulary import BANDS
from services.outcomes.metrics import (
    AUC,
    BAND_DEFAULT_RATE,
    DECLINED_UNOBSERVED,
    DEFAULT_RATE,
    ECE,
    KS,
    MATURED,
    REFERENCE_AUC,
    REFERENCE_ECE,
)
from services.outcomes.performance import Interval, Performance, performance
from services.outcomes.store import OutcomeRow, OutcomesStore

log = logging.getLogger(__name__)


def month_of(row: OutcomeRow) -> str:
    """YYYY-MM of the application (of the disbursement when the decision did not say)."""
    return (row.applied_at or row.disbursed_at).strftime("%Y-%m")


def by_month(rows: list[OutcomeRow]) -> dict[tuple[str, str, str], Performance]:
    """(tenant, bundle, YYYY-MM of application) -> its performance on the matured loans."""
    groups: dict[tuple[str, str, str], list[OutcomeRow]] = defaultdict(list)
    for row in rows:
        groups[(row.tenant_id, row.model_version, month_of(row))].append(row)
    return {
        key: performance(
            key[1],
            key[2],
            [r.defaulted for r in group],
            [r.probability_of_default for r in group],
            [BANDS.name_or(r.band, "unknown") for r in group],
        )
        for key, group in sorted(groups.items())
    }


def reference(bundle_root: Path, model_version: str) -> tuple[float | None, float | None]:
    """The bundle's test AUC and ECE as recorded when it was trained (None when not at hand)."""
    try:
        metrics = json.loads((bundle_root / model_version / "metrics.json").read_text())
        shipped = metrics["test"]["shipped"]
        return float(shipped["auc"]), float(shipped["ece"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def _set(gauge, labels: tuple[str, ...], interval: Interval) -> None:  # type: ignore[no-untyped-def]
    for bound, value in (
        ("estimate", interval.value),
        ("low", interval.low),
        ("high", interval.high),
    ):
        if value is not None:
            gauge.labels(*labels, bound).set(value)


async def refresh(
    store: OutcomesStore, bundle_root: Path
) -> dict[tuple[str, str, str], Performance]:
    months = await asyncio.to_thread(by_month, await store.matured())
    for (tenant, version, month), p in months.items():
        labels = (tenant, version, month)
        MATURED.labels(*labels).set(p.matured)
        DEFAULT_RATE.labels(*labels).set(p.default_rate)
        _set(AUC, labels, p.auc)
        _set(KS, labels, p.ks)
        _set(ECE, labels, p.ece)
        for band, (_n, _bad, rate) in p.bands.items():
            BAND_DEFAULT_RATE.labels(*labels, band).set(rate)
    for version in {v for _t, v, _m in months}:
        auc, ece = reference(bundle_root, version)
        if auc is not None:
            REFERENCE_AUC.labels(version).set(auc)
        if ece is not None:
            REFERENCE_ECE.labels(version).set(ece)
    for tenant, version, n in await store.declined_without_loan():
        DECLINED_UNOBSERVED.labels(tenant, version).set(n)
    return months


async def keep_refreshing(
    steps: Sequence[tuple[str, Callable[[], Awaitable[object]]]], every_s: float
) -> None:
    """Run each (name, step) in turn every `every_s` seconds (live performance, the alerts it
    raises, the shadow comparison); one failing step is logged and does not stop the others."""
    while True:
        started = time.monotonic()
        for name, step in steps:
            try:
                await step()
            except Exception:
                log.exception("refreshing failed", extra={"step": name})
        await asyncio.sleep(max(every_s - (time.monotonic() - started), min(every_s, 1.0)))
