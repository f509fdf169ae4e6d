"""The challenger in shadow against the champion, on the same live applications (issue 13, item 4).

A challenger must prove itself on live traffic before it decides anyone's loan: scoring runs it
beside the champion and publishes its decisions on `credit.decisions.shadow`, which nothing acts
on. Per tenant, champion and challenger this module measures, from row-aligned pairs:

- how often the two bands agree and the band-switch matrix (champion band x challenger band);
- the PSI of the challenger's PDs against the champion's, cut at the champion's deciles with the
  drift service's own definition (`services.common.psi`), so "0.25 is a big move" reads the same;
- on the loans that matured (only those the champion's decision led to: reject inference's open
  question is the same as in live performance), each model's AUC and ECE with the bootstrap
  intervals of `performance`;
- fairness by group: each model's approval rate per gender and age band, the disparate impact
  ratio (lowest / highest approval rate) and, on matured loans, the equal-opportunity difference
  (the largest gap in approval rate among good borrowers), as `training.evaluate.fairness_report`
  defines them (the promotion gate's bars), so this page and the gate speak of the same numbers.

Pure numpy on what the store hands over; no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from services.common.psi import bin_proportions, psi, quantile_edges
from services.common.vocabulary import BANDS
from services.outcomes.performance import Interval, performance

APPROVE = "approve"
#: the attributes core banking sends with an application for fairness oversight (never a model
#: input); the outcomes service keeps only these of an application
PROTECTED_ATTRIBUTES = ("gender", "age_band")
UNKNOWN_GROUP = ""  # an application that did not say: left out of that attribute's fairness
#: how the gate's rows name a group the application did not say (the gate's own default)
GATE_UNKNOWN_GROUP = "unknown"


@dataclass(frozen=True)
class ShadowPair:
    """One application both models scored, with its outcome once its loan matured."""

    tenant_id: str
    application_id: str
    champion: str
    challenger: str
    champion_pd: float
    challenger_pd: float
    champion_band: str
    challenger_band: str
    gender: str
    age_band: str
    defaulted: bool | None  # None: no loan, or not matured yet

    def group(self, attribute: str) -> str:
        return str(getattr(self, attribute))


@dataclass(frozen=True)
class ModelFairness:
    """One model's fairness on one protected attribute."""

    approval_rate: dict[str, float]  # group -> share approved (all paired applications)
    disparate_impact: float | None  # lowest / highest approval rate; None with < 2 groups
    good_approval_rate: dict[str, float | None]  # group -> approved among matured good borrowers
    equal_opportunity: float | None  # largest gap of good_approval_rate; None when undefined


@dataclass(frozen=True)
class GroupFairness:
    attribute: str
    applications: dict[str, int]  # group -> paired applications
    champion: ModelFairness
    challenger: ModelFairness


@dataclass(frozen=True)
class OnMatured:
    """One model's ranking and calibration on the matured loans both scored."""

    auc: Interval
    ece: Interval


@dataclass(frozen=True)
class Comparison:
    tenant_id: str
    champion: str
    challenger: str
    paired: int
    agreement: float
    #: champion band -> challenger band -> applications
    switches: dict[str, dict[str, int]]
    psi: float
    champion_mean_pd: float
    challenger_mean_pd: float
    champion_approval_rate: float
    challenger_approval_rate: float
    matured: int
    defaults: int
    champion_on_matured: OnMatured
    challenger_on_matured: OnMatured
    fairness: list[GroupFairness] = field(default_factory=list)


def agreement(champion_bands: Sequence[str], challenger_bands: Sequence[str]) -> float:
    """Share of applications both models put in the same band (0 with none)."""
    a = np.asarray(champion_bands, dtype=object)
    b = np.asarray(challenger_bands, dtype=object)
    return float((a == b).mean()) if len(a) else 0.0


def band_switches(
    champion_bands: Sequence[str], challenger_bands: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Counts per (champion band, challenger band), every known band present (zeros included)
    so the matrix always has the same shape; a band this build does not know is added."""
    names = list(BANDS.names)
    names += sorted({*champion_bands, *challenger_bands} - set(names))
    matrix = {row: dict.fromkeys(names, 0) for row in names}
    for a, b in zip(champion_bands, challenger_bands, strict=True):
        matrix[a][b] += 1
    return matrix


def shadow_psi(champion_pd: ArrayLike, challenger_pd: ArrayLike) -> float:
    """PSI of the challenger's PDs (actual) against the champion's (expected), on the champion's
    ten quantile bins; NaN with no pairs."""
    if np.asarray(champion_pd).size == 0:
        return float("nan")
    edges = quantile_edges(champion_pd)
    return psi(bin_proportions(challenger_pd, edges), bin_proportions(champion_pd, edges))


def _rates(groups: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    return {
        str(g): float(flags[groups == g].mean())
        for g in sorted(set(groups.tolist()))
        if (groups == g).any()
    }


def model_fairness(
    groups: Sequence[str], approved: Sequence[bool], defaulted: Sequence[bool | None]
) -> ModelFairness:
    """Approval rates and disparate impact over every application whose group is known; equal
    opportunity over those whose loan matured and was repaid (a group with no good borrower has
    no rate and is left out of the gap, as in training's fairness report)."""
    g = np.asarray(groups, dtype=object)
    ok = np.asarray(approved, dtype=bool)
    outcome = np.asarray(defaulted, dtype=object)
    known = g != UNKNOWN_GROUP
    approval = _rates(g[known], ok[known])
    positive = list(approval.values())
    di = min(positive) / max(positive) if len(positive) >= 2 and max(positive) > 0 else None
    good = known & np.array([o is False for o in outcome], dtype=bool)
    good_rate: dict[str, float | None] = {name: None for name in approval}
    good_rate.update(_rates(g[good], ok[good]))
    defined = [r for r in good_rate.values() if r is not None]
    eo = max(defined) - min(defined) if len(defined) >= 2 else None
    return ModelFairness(approval, di, good_rate, eo)


def group_fairness(pairs: Sequence[ShadowPair], attribute: str) -> GroupFairness:
    groups = [p.group(attribute) for p in pairs]
    defaulted = [p.defaulted for p in pairs]
    counts: dict[str, int] = defaultdict(int)
    for name in groups:
        if name != UNKNOWN_GROUP:
            counts[name] += 1
    return GroupFairness(
        attribute=attribute,
        applications=dict(sorted(counts.items())),
        champion=model_fairness(groups, [p.champion_band == APPROVE for p in pairs], defaulted),
        challenger=model_fairness(groups, [p.challenger_band == APPROVE for p in pairs], defaulted),
    )


def _on_matured(version: str, pairs: Sequence[ShadowPair], which: str) -> OnMatured:
    y = [bool(p.defaulted) for p in pairs]
    pd = [getattr(p, f"{which}_pd") for p in pairs]
    bands = [getattr(p, f"{which}_band") for p in pairs]
    if not pairs:
        return OnMatured(Interval(None, None, None), Interval(None, None, None))
    measured = performance(version, "shadow", y, pd, bands)
    return OnMatured(measured.auc, measured.ece)


def compare(pairs: Sequence[ShadowPair]) -> Comparison:
    """One (tenant, champion, challenger)'s comparison; `pairs` must all share those three."""
    if not pairs:
        raise ValueError("a comparison needs at least one pair")
    first = pairs[0]
    if any(
        (p.tenant_id, p.champion, p.challenger)
        != (first.tenant_id, first.champion, first.challenger)
        for p in pairs
    ):
        raise ValueError("pairs of different tenants, champions or challengers")
    a_bands = [p.champion_band for p in pairs]
    b_bands = [p.challenger_band for p in pairs]
    a_pd = np.array([p.champion_pd for p in pairs], dtype=np.float64)
    b_pd = np.array([p.challenger_pd for p in pairs], dtype=np.float64)
    matured = [p for p in pairs if p.defaulted is not None]
    return Comparison(
        tenant_id=first.tenant_id,
        champion=first.champion,
        challenger=first.challenger,
        paired=len(pairs),
        agreement=agreement(a_bands, b_bands),
        switches=band_switches(a_bands, b_bands),
        psi=shadow_psi(a_pd, b_pd),
        champion_mean_pd=float(a_pd.mean()),
        challenger_mean_pd=float(b_pd.mean()),
        champion_approval_rate=float(np.mean([b == APPROVE for b in a_bands])),
        challenger_approval_rate=float(np.mean([b == APPROVE for b in b_bands])),
        matured=len(matured),
        defaults=sum(bool(p.defaulted) for p in matured),
        champion_on_matured=_on_matured(first.champion, matured, "champion"),
        challenger_on_matured=_on_matured(first.challenger, matured, "challenger"),
        fairness=[group_fairness(pairs, attribute) for attribute in PROTECTED_ATTRIBUTES],
    )


def compare_all(pairs: Sequence[ShadowPair]) -> list[Comparison]:
    """Every (tenant, champion, challenger) the pairs hold, in that order. A challenger shadowed
    beside itself (a replay after its promotion) compares nothing and is left out."""
    grouped: dict[tuple[str, str, str], list[ShadowPair]] = defaultdict(list)
    for p in pairs:
        if p.champion != p.challenger:
            grouped[(p.tenant_id, p.champion, p.challenger)].append(p)
    return [compare(grouped[key]) for key in sorted(grouped)]


@dataclass(frozen=True)
class GateRow:
    """One matured loan both models scored: the promotion gate's input (`/shadow/pairs.json`)."""

    defaulted: bool
    champion_pd: float
    challenger_pd: float
    champion_band: str
    challenger_band: str
    gender: str
    age_band: str


@dataclass(frozen=True)
class GatePairs:
    challenger: str
    champion: str
    rows: list[GateRow]


def gate_pairs(pairs: Sequence[ShadowPair], challenger: str) -> GatePairs:
    """The matured loans `challenger` was shadowed on, beside the champion it was shadowed
    beside most often (a challenger normally has one; after a promotion mid-shadow the older
    champion's pairs are not like for like with the newer's), every tenant together. The
    champion is "" when the challenger was never shadowed; a group the application did not say
    is "unknown"; a pair with a band this build cannot name is left out (the contract's bands
    are approve, review and decline)."""
    mine = [p for p in pairs if p.challenger == challenger and p.champion != challenger]
    counts: dict[str, int] = defaultdict(int)
    for p in mine:
        counts[p.champion] += 1
    if not counts:
        return GatePairs(challenger, "", [])
    champion = max(sorted(counts), key=lambda c: counts[c])
    rows = [
        GateRow(
            defaulted=bool(p.defaulted),
            champion_pd=p.champion_pd,
            challenger_pd=p.challenger_pd,
            champion_band=p.champion_band,
            challenger_band=p.challenger_band,
            gender=p.gender or GATE_UNKNOWN_GROUP,
            age_band=p.age_band or GATE_UNKNOWN_GROUP,
        )
        for p in mine
        if p.champion == champion
        and p.defaulted is not None
        and p.champion_band in BANDS
        and p.challenger_band in BANDS
    ]
    return GatePairs(challenger, champion, rows)
