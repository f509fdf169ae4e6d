"""How well a model ranked and priced risk on the loans that matured: per bundle and month of
application, AUC, KS, expected calibration error and the default rate per band, each with a
bootstrap confidence interval (resampling loans), so a month with few matured loans says how
little it knows. Pure numpy and scikit-learn on what the store hands over."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from services.common.model_metrics import expected_calibration_error, ks_statistic

BOOTSTRAP_SAMPLES = 200
CONFIDENCE = 0.95
SEED = 20_261_129  # fixed: the same outcomes give the same intervals


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Performance:
    model_version: str
    month: str  # YYYY-MM of the application
    matured: int
    defaults: int
    default_rate: float
    auc: Interval
    ks: Interval
    ece: Interval
    #: band -> (loans, defaults, default rate)
    bands: dict[str, tuple[int, int, float]] = field(default_factory=dict)


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def _interval(y: np.ndarray, p: np.ndarray, statistic: str, rng: np.random.Generator) -> Interval:
    measure = {"auc": _auc, "ks": ks_statistic, "ece": expected_calibration_error}[statistic]
    value = measure(y, p)
    if value is None:
        return Interval(None, None, None)
    samples = []
    for _ in range(BOOTSTRAP_SAMPLES):
        pick = rng.integers(0, len(y), len(y))
        if statistic != "ece" and not 0 < y[pick].sum() < len(pick):
            continue  # a resample with one class has no ranking to measure
        sample = measure(y[pick], p[pick])
        if sample is not None:
            samples.append(sample)
    if len(samples) < BOOTSTRAP_SAMPLES // 2:
        return Interval(value, None, None)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def performance(
    model_version: str,
    month: str,
    defaulted: Sequence[bool],
    probability: Sequence[float],
    bands: Sequence[str],
) -> Performance:
    """One bundle's month of matured loans (row-aligned outcome, predicted PD, model band)."""
    y = np.asarray(defaulted, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    rng = np.random.default_rng(SEED)
    by_band: dict[str, tuple[int, int, float]] = {}
    band_array = np.asarray(bands, dtype=object)
    for band in sorted(set(bands)):
        mask = band_array == band
        n, bad = int(mask.sum()), int(y[mask].sum())
        by_band[band] = (n, bad, bad / n if n else 0.0)
    return Performance(
        model_version=model_version,
        month=month,
        matured=len(y),
        defaults=int(y.sum()),
        default_rate=float(y.mean()) if len(y) else 0.0,
        auc=_interval(y, p, "auc", rng) if len(y) else Interval(None, None, None),
        ks=_interval(y, p, "ks", rng) if len(y) else Interval(None, None, None),
        ece=_interval(y, p, "ece", rng) if len(y) else Interval(None, None, None),
        bands=by_band,
    )
