"""The promotion gate: may a challenger replace the champion? (DESIGN "What good means", issue 13.)

Pure numpy on row-aligned arrays, no MLflow and no I/O, so the rule can be tested on its own and
the registry wiring only moves the `champion` alias when `gate(...).passed`. Checks:

- `auc_vs_champion[<set>]`: challenger AUC - champion AUC on the same rows >= -0.005, on the
  held-out set and, when live outcomes exist, on the matured outcomes (the loans the champion
  approved: both models are judged on those same rows, so the comparison is like for like);
- `ece[held_out]`: challenger ECE <= 0.02, 10 equal-width bins as the outcomes service measures it
  live (`services.common.model_metrics`), so the promotion bar and the live alert agree;
- `disparate_impact[<attr>]` in [0.90, 1.10] and `equal_opportunity[<attr>]` < 0.05 on the
  held-out set's approvals, as `training.evaluate.fairness_report` defines them.

Every check carries a bootstrap 95 % percentile interval (rows resampled with a fixed seed, the
same draws for every check on a set, the AUC difference paired). Decision rule: the point estimate
decides, the interval is reported beside it (in the refusal too) to say how sure the number is.
Requiring the whole interval inside the bounds would refuse honest challengers for want of rows
(on a few thousand rows the equal-opportunity interval is ~0.05 wide by itself); refusing when the
whole interval lies outside adds nothing, since a point estimate inside an interval wholly outside
arises only from the percentile bootstrap's bias on between-group extremes (the largest gap and
the lowest/highest ratio drift away from parity under resampling). An undefined measure (one class
only, nobody approved) fails: the gate cannot vouch for what it cannot measure. Note that the
disparate impact ratio is lowest/highest approval rate, so it never exceeds 1 and only its lower
bound can fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from services.common.decision import DecisionBands, checked_probabilities
from services.common.model_metrics import auc_samples, expected_calibration_error
from training.evaluate import (
    DISPARATE_IMPACT_RANGE,
    EQUAL_OPPORTUNITY_MAX,
    fairness_report,
)

HELD_OUT = "held_out"
MATURED_OUTCOMES = "matured_outcomes"

AUC_TOLERANCE = 0.005
ECE_MAX = 0.02
BOOTSTRAP_SAMPLES = 200
CONFIDENCE = 0.95
SEED = 20_260_513  # fixed: the same inputs give the same intervals


def _frozen(values: Any, dtype: type, what: str) -> np.ndarray:
    # a copy, read-only: the caller's array may change later, the set's may not
    arr: np.ndarray = np.array(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare by identity
class EvaluationSet:
    """One set of rows both models are judged on, row-aligned.

    y_default: 1 = defaulted. challenger_approved: the approve band the challenger would give
    (use `from_bands` to derive it from its cut-off); needed, with at least one protected
    attribute in `groups`, on the held-out set, where fairness is checked.
    """

    y_default: np.ndarray
    champion_pd: np.ndarray
    challenger_pd: np.ndarray
    challenger_approved: np.ndarray | None = None
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not np.all(np.isin(np.asarray(self.y_default), (0, 1))):  # before the cast hides 0.5
            raise ValueError("y_default must be 0 (repaid) or 1 (defaulted)")
        y = _frozen(self.y_default, np.int64, "y_default")
        n = y.shape[0]
        if n == 0:
            raise ValueError("an evaluation set needs at least one row")
        object.__setattr__(self, "y_default", y)
        for name in ("champion_pd", "challenger_pd"):
            pd = _frozen(checked_probabilities(getattr(self, name)), np.float64, name)
            if pd.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {pd.shape}")
            object.__setattr__(self, name, pd)
        if self.challenger_approved is not None:
            raw = np.asarray(self.challenger_approved)
            if not np.all(np.isin(raw, (0, 1))):
                raise ValueError("challenger_approved must be boolean (or 0/1)")
            approved = _frozen(raw, np.bool_, "challenger_approved")
            if approved.shape != (n,):
                raise ValueError(f"challenger_approved must have shape ({n},)")
            object.__setattr__(self, "challenger_approved", approved)
        groups: dict[str, np.ndarray] = {}
        for attribute, labels in self.groups.items():
            arr = _frozen(np.asarray(labels).astype(str), np.str_, f"groups[{attribute!r}]")
            if arr.shape != (n,):
                raise ValueError(f"group labels for {attribute!r} must have shape ({n},)")
            groups[attribute] = arr
        object.__setattr__(self, "groups", MappingProxyType(groups))

    @property
    def rows(self) -> int:
        return int(self.y_default.shape[0])

    @classmethod
    def from_bands(
        cls,
        y_default: np.ndarray,
        champion_pd: np.ndarray,
        challenger_pd: np.ndarray,
        bands: DecisionBands,
        groups: Mapping[str, np.ndarray] | None = None,
    ) -> EvaluationSet:
        """Approvals as serving would decide them: the challenger's PD below its approve cut-off."""
        return cls(
            y_default=y_default,
            champion_pd=champion_pd,
            challenger_pd=challenger_pd,
            challenger_approved=bands.band(challenger_pd) == "approve",
            groups=dict(groups or {}),
        )


@dataclass(frozen=True)
class Threshold:
    """What a check accepts: low <= value <= high (or < high when high_exclusive); None = open."""

    low: float | None = None
    high: float | None = None
    high_exclusive: bool = False

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"threshold low {self.low} is above high {self.high}")

    def holds(self, value: float) -> bool:
        if self.low is not None and value < self.low:
            return False
        if self.high is not None:
            return value < self.high if self.high_exclusive else value <= self.high
        return True

    def __str__(self) -> str:
        high_op = "<" if self.high_exclusive else "<="
        if self.low is not None and self.high is not None:
            close = ")" if self.high_exclusive else "]"
            return f"in [{self.low:g}, {self.high:g}{close}"
        if self.low is not None:
            return f">= {self.low:g}"
        if self.high is not None:
            return f"{high_op} {self.high:g}"
        return "any value"

    def violation(self) -> str:
        """How a failing value breaks the bound, e.g. ">= 0.05" or "outside [0.9, 1.1]"."""
        if self.low is not None and self.high is not None:
            close = ")" if self.high_exclusive else "]"
            return f"outside [{self.low:g}, {self.high:g}{close}"
        if self.low is not None:
            return f"< {self.low:g}"
        if self.high is not None:
            return f"{'>=' if self.high_exclusive else '>'} {self.high:g}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "high_exclusive": self.high_exclusive,
            "text": str(self),
        }


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _ci_text(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "no 95% CI (too few usable resamples)"
    return f"95% CI {_fmt(interval[0])} to {_fmt(interval[1])}"


@dataclass(frozen=True)
class Check:
    """One gate check: its point estimate, bound, bootstrap interval and a human detail."""

    name: str
    passed: bool
    value: float | None
    threshold: Threshold
    interval: tuple[float, float] | None
    detail: str
    #: supporting numbers for the audit trail (e.g. both AUCs)
    measures: Mapping[str, float | None] = field(default_factory=dict)

    def reason(self) -> str:
        """One short line: the value against its bound and its interval (details in `detail`)."""
        if self.value is None:
            return f"{self.name} undefined ({self.detail})"
        verdict = str(self.threshold) if self.passed else self.threshold.violation()
        return f"{self.name} {_fmt(self.value)} {verdict} ({_ci_text(self.interval)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold.to_dict(),
            "interval": list(self.interval) if self.interval is not None else None,
            "detail": self.detail,
            "measures": dict(self.measures),
        }


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def refusal(self) -> str | None:
        """One line naming every failed check, or None when the gate holds."""
        if self.passed:
            return None
        return "refused: " + "; ".join(c.reason() for c in self.failed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the promotion audit event and report."""
        return {
            "passed": self.passed,
            "refusal": self.refusal(),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class GatePolicy:
    """The bars (DESIGN defaults) and the bootstrap that reports how sure each number is."""

    auc_tolerance: float = AUC_TOLERANCE
    ece_max: float = ECE_MAX
    disparate_impact_range: tuple[float, float] = DISPARATE_IMPACT_RANGE
    equal_opportunity_max: float = EQUAL_OPPORTUNITY_MAX
    bootstrap_samples: int = BOOTSTRAP_SAMPLES
    confidence: float = CONFIDENCE
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.bootstrap_samples < 1:
            raise ValueError("bootstrap_samples must be at least 1")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError("confidence must be between 0 and 1")


def bootstrap_draws(rows: int, policy: GatePolicy) -> np.ndarray:
    """Bootstrap row indices (samples x rows), fresh from the seed for every set, so one set's
    intervals do not depend on which other sets were given."""
    rng = np.random.default_rng(policy.seed)
    return rng.integers(0, rows, size=(policy.bootstrap_samples, rows))


def _interval(samples: np.ndarray, policy: GatePolicy) -> tuple[float, float] | None:
    """Percentile interval over the defined resamples; None when fewer than half are defined."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0 or finite.size < policy.bootstrap_samples / 2:
        return None
    tail = (1.0 - policy.confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _verdict(value: float | None, bound: Threshold) -> bool:
    return value is not None and bool(bound.holds(value))


def _auc_check(name: str, data: EvaluationSet, policy: GatePolicy) -> Check:
    y = data.y_default
    bound = Threshold(low=-policy.auc_tolerance)
    if not 0 < int(y.sum()) < y.size:
        return Check(
            f"auc_vs_champion[{name}]",
            False,
            None,
            bound,
            None,
            f"{data.rows} rows need both defaults and repayments",
        )
    champion = float(roc_auc_score(y, data.champion_pd))
    challenger = float(roc_auc_score(y, data.challenger_pd))
    diff = challenger - champion
    draws = bootstrap_draws(data.rows, policy)
    samples = auc_samples(y, data.challenger_pd, draws) - auc_samples(y, data.champion_pd, draws)
    interval = _interval(samples, policy)
    return Check(
        name=f"auc_vs_champion[{name}]",
        passed=_verdict(diff, bound),
        value=diff,
        threshold=bound,
        interval=interval,
        detail=(
            f"challenger AUC {_fmt(challenger)} vs champion {_fmt(champion)} on the same "
            f"{data.rows} rows, paired {_ci_text(interval)}"
        ),
        measures={"challenger_auc": challenger, "champion_auc": champion},
    )


def _ece_check(name: str, data: EvaluationSet, policy: GatePolicy) -> Check:
    y, p = data.y_default.astype(np.float64), data.challenger_pd
    value = float(expected_calibration_error(y, p))
    samples = np.array(
        [expected_calibration_error(y[pick], p[pick]) for pick in bootstrap_draws(y.size, policy)]
    )
    interval = _interval(samples, policy)
    bound = Threshold(high=policy.ece_max)
    return Check(
        name=f"ece[{name}]",
        passed=_verdict(value, bound),
        value=value,
        threshold=bound,
        interval=interval,
        detail=f"10 equal-width bins, {data.rows} rows, {_ci_text(interval)}",
        measures={"default_rate": float(y.mean()), "mean_pd": float(p.mean())},
    )


def _group_rates(
    codes: np.ndarray, groups: int, draws: np.ndarray, hit: np.ndarray, within: np.ndarray
) -> np.ndarray:
    """Per draw and group: the share of `within` rows (0/1) that are `hit` (0/1); NaN where a
    group has no such row in the draw.

    One bincount over (draw, group) keys, so 200 resamples cost milliseconds; fairlearn's
    MetricFrame, which gives the point estimates, takes ~0.3 s a call.
    """
    samples = draws.shape[0]
    keys = (np.arange(samples)[:, None] * groups + codes[draws]).ravel()
    size = samples * groups
    total = np.bincount(keys, weights=within[draws].ravel(), minlength=size)
    hits = np.bincount(keys, weights=(within * hit)[draws].ravel(), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = hits / total
    return np.where(total > 0, rates, np.nan).reshape(samples, groups)


def _between_groups(
    rates: np.ndarray, combine: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Per draw, combine(min, max) over the groups with a defined rate (NaN when none is)."""
    defined = np.isfinite(rates)
    any_defined = defined.any(axis=1)
    low = np.where(any_defined, np.min(np.where(defined, rates, np.inf), axis=1), np.nan)
    high = np.where(any_defined, np.max(np.where(defined, rates, -np.inf), axis=1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return combine(low, high)


def fairness_samples(
    y_default: np.ndarray, approved: np.ndarray, labels: np.ndarray, draws: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Disparate impact ratio and equal-opportunity difference on each resample (rows of draws),
    defined as `fairness_report` defines them (groups absent or undefined in a draw left out)."""
    values, codes = np.unique(labels, return_inverse=True)
    approve = approved.astype(np.float64)
    everyone = np.ones(approve.shape, dtype=np.float64)
    good = (y_default == 0).astype(np.float64)
    approval = _group_rates(codes, values.size, draws, approve, everyone)
    good_approval = _group_rates(codes, values.size, draws, approve, good)
    ratio = _between_groups(approval, lambda low, high: np.where(high > 0, low / high, np.nan))
    gap = _between_groups(good_approval, lambda low, high: high - low)
    return ratio, gap


def _fairness_check(
    name: str,
    value: float | None,
    samples: np.ndarray,
    bound: Threshold,
    per_group: Mapping[str, float | None],
    what: str,
    policy: GatePolicy,
) -> Check:
    interval = _interval(samples, policy)
    shown = ", ".join(f"{g} {'n/a' if r is None else f'{r:.3f}'}" for g, r in per_group.items())
    return Check(
        name=name,
        passed=_verdict(value, bound),
        value=value,
        threshold=bound,
        interval=interval,
        detail=f"{what} {shown}; {_ci_text(interval)}",
        measures=dict(per_group),
    )


def _fairness_checks(data: EvaluationSet, policy: GatePolicy) -> list[Check]:
    """Disparate impact and equal opportunity per protected attribute on the challenger's
    approvals: point estimates from fairness_report, intervals from the same draws for all."""
    assert data.challenger_approved is not None  # gate() checked
    report = fairness_report(data.y_default, data.challenger_approved, data.groups)
    draws = bootstrap_draws(data.rows, policy)
    low, high = policy.disparate_impact_range
    di_bound = Threshold(low=low, high=high)
    eo_bound = Threshold(high=policy.equal_opportunity_max, high_exclusive=True)
    checks: list[Check] = []
    for attribute, labels in data.groups.items():
        entry = report[attribute]
        per_group = entry["groups"]
        ratio, gap = fairness_samples(data.y_default, data.challenger_approved, labels, draws)
        checks.append(
            _fairness_check(
                f"disparate_impact[{attribute}]",
                entry["disparate_impact_ratio"],
                ratio,
                di_bound,
                {g: row["approval_rate"] for g, row in per_group.items()},
                "approval rate",
                policy,
            )
        )
        checks.append(
            _fairness_check(
                f"equal_opportunity[{attribute}]",
                entry["equal_opportunity_difference"],
                gap,
                eo_bound,
                {g: row["tpr"] for g, row in per_group.items()},
                "approval rate among good borrowers",
                policy,
            )
        )
    return checks


def gate(sets: Mapping[str, EvaluationSet], policy: GatePolicy | None = None) -> GateResult:
    """Run every check; the challenger may be promoted only when all hold.

    `sets` must hold HELD_OUT and may hold MATURED_OUTCOMES (or other named sets): the AUC check
    runs on each, calibration and fairness on the held-out set only (matured loans are those the
    champion approved, a biased sample for a challenger's calibration and approvals).
    """
    policy = policy or GatePolicy()
    if HELD_OUT not in sets:
        raise ValueError(f"the gate needs the {HELD_OUT!r} set, got {sorted(sets)}")
    held_out = sets[HELD_OUT]
    if held_out.challenger_approved is None or not held_out.groups:
        raise ValueError(
            f"the {HELD_OUT!r} set needs challenger_approved and at least one protected attribute"
        )
    ordered = [HELD_OUT, *sorted(name for name in sets if name != HELD_OUT)]
    checks = [_auc_check(name, sets[name], policy) for name in ordered]
    checks.append(_ece_check(HELD_OUT, held_out, policy))
    checks.extend(_fairness_checks(held_out, policy))
    return GateResult(passed=all(c.passed for c in checks), checks=tuple(checks))
