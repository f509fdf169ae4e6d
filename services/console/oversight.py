"""Oversight of live decisions: approval rates and disparate impact by protected group with
bootstrap confidence intervals, and the drift service's PSI.

The groups come from the applications the console keeps (core banking sends gender and age band
for this, and no model reads them). A group's approval count is binomial, so resampling its
decisions with replacement is drawing Binomial(n, p̂): the bootstrap below draws that directly,
thousands of times in microseconds, instead of resampling rows. Disparate impact is each group's
approval rate over the most-approved group's, its interval from the same draws.

Equal-opportunity difference needs outcomes (who repaid), which live decisions do not have yet;
it is reported once loans mature (issue 13), not guessed here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)
DRAWS = 4000
DI_BAND = (0.8, 1.25)  # the four-fifths rule, both ways


@dataclass(frozen=True)
class GroupRate:
    group: str
    n: int
    approved: int
    rate: float
    rate_low: float
    rate_high: float
    di: float | None  # approval rate / the most-approved group's
    di_low: float | None
    di_high: float | None

    @property
    def flagged(self) -> bool:
        """The interval lies wholly outside the four-fifths band: a gap the data shows."""
        if self.di_low is None or self.di_high is None:
            return False
        return self.di_high < DI_BAND[0] or self.di_low > DI_BAND[1]


def group_rates(rows: Sequence[Any], *, draws: int = DRAWS, seed: int = 7) -> list[GroupRate]:
    """Rates with 95% bootstrap intervals; `rows` carry grp, n and approved."""
    groups = [(str(r["grp"]), int(r["n"]), int(r["approved"])) for r in rows if int(r["n"]) > 0]
    if not groups:
        return []
    rng = np.random.default_rng(seed)
    rates = {g: a / n for g, n, a in groups}
    boot = {g: rng.binomial(n, rates[g], size=draws) / n for g, n, _a in groups}
    reference = max(groups, key=lambda g: (rates[g[0]], g[1]))[0]
    out = []
    for group, n, approved in groups:
        low, high = np.quantile(boot[group], [0.025, 0.975])
        di = di_low = di_high = None
        if rates[reference] > 0:
            di = rates[group] / rates[reference]
            ratio = boot[group] / np.maximum(boot[reference], 1e-12)
            di_low, di_high = (float(q) for q in np.quantile(ratio, [0.025, 0.975]))
        out.append(
            GroupRate(
                group, n, approved, rates[group], float(low), float(high), di, di_low, di_high
            )
        )
    return out


@dataclass(frozen=True)
class Psi:
    subject: str
    model_version: str
    value: float


async def drift_psi(url: str, timeout_s: float = 2.0) -> list[Psi] | None:
    """The drift service's PSI gauges, read from its metrics endpoint (its published contract);
    None when it cannot be reached."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("drift metrics unavailable", extra={"error": repr(exc)})
        return None
    return parse_psi(response.text)


def parse_psi(text: str) -> list[Psi]:
    """The `alama_drift_psi` samples of a Prometheus text page, largest first."""
    found = []
    for family in text_string_to_metric_families(text):
        if family.name != "alama_drift_psi":
            continue
        for sample in family.samples:
            found.append(
                Psi(
                    sample.labels.get("subject", ""),
                    sample.labels.get("model_version", ""),
                    float(sample.value),
                )
            )
    return sorted(found, key=lambda p: -p.value)


#: the design's target for the equal-opportunity difference
EOD_TARGET = 0.05


@dataclass(frozen=True)
class GroupOpportunity:
    group: str
    good: int  # good borrowers (matured, no default)
    approved: int  # of them, put in the approve band by the model
    tpr: float
    tpr_low: float
    tpr_high: float


@dataclass(frozen=True)
class Opportunity:
    groups: list[GroupOpportunity]
    eod: float | None  # the largest gap in TPR between groups
    eod_low: float | None
    eod_high: float | None

    @property
    def breaches(self) -> bool:
        """Flagged when the whole interval lies above the target (the gap is real)."""
        return self.eod_low is not None and self.eod_low > EOD_TARGET


def equal_opportunity(rows: Sequence[Any], *, draws: int = DRAWS, seed: int = 11) -> Opportunity:
    """TPR (approve band among good borrowers) per group with 95% binomial bootstrap
    intervals, and the equal-opportunity difference (largest TPR gap) with its interval."""
    groups = [
        (str(r["grp"]), int(r["good"]), int(r["approved"])) for r in rows if int(r["good"]) > 0
    ]
    if not groups:
        return Opportunity([], None, None, None)
    rng = np.random.default_rng(seed)
    boot = np.stack([rng.binomial(n, a / n, size=draws) / n for _g, n, a in groups])
    out = []
    for (group, n, approved), sample in zip(groups, boot, strict=True):
        low, high = np.quantile(sample, [0.025, 0.975])
        out.append(GroupOpportunity(group, n, approved, approved / n, float(low), float(high)))
    if len(groups) < 2:
        return Opportunity(out, None, None, None)
    rates = [g.tpr for g in out]
    gaps = boot.max(axis=0) - boot.min(axis=0)
    low, high = np.quantile(gaps, [0.025, 0.975])
    return Opportunity(out, max(rates) - min(rates), float(low), float(high))


@dataclass(frozen=True)
class LivePerformance:
    model_version: str
    month: str
    matured: int
    default_rate: float | None
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    ece: float | None
    reference_auc: float | None


async def live_performance(
    url: str, tenant: str, timeout_s: float = 2.0
) -> list[LivePerformance] | None:
    """The outcomes service's live performance gauges for a tenant, read from its metrics
    endpoint (its published contract); None when it cannot be reached."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("outcomes metrics unavailable", extra={"error": repr(exc)})
        return None
    return parse_live(response.text, tenant)


def parse_live(text: str, tenant: str) -> list[LivePerformance]:
    """The tenant's `alama_live_*` samples by bundle and month, newest month first."""
    values: dict[tuple[str, str], dict[str, float]] = {}
    reference: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "alama_model_reference_auc":
                reference[labels.get("model_version", "")] = float(sample.value)
                continue
            if not sample.name.startswith("alama_live_") or labels.get("tenant") != tenant:
                continue
            key = (labels.get("model_version", ""), labels.get("month", ""))
            name = sample.name.removeprefix("alama_live_")
            if "bound" in labels:
                name = f"{name}_{labels['bound']}"
            elif "band" in labels:
                continue
            values.setdefault(key, {})[name] = float(sample.value)
    out = [
        LivePerformance(
            model_version=version,
            month=month,
            matured=int(v.get("matured_loans", 0)),
            default_rate=v.get("default_rate"),
            auc=v.get("auc_estimate"),
            auc_low=v.get("auc_low"),
            auc_high=v.get("auc_high"),
            ece=v.get("ece_estimate"),
            reference_auc=reference.get(version),
        )
        for (version, month), v in values.items()
    ]
    return sorted(out, key=lambda p: (p.month, p.model_version), reverse=True)
