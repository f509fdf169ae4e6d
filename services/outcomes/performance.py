"""How well a model ranked and priced risk on the loans that matured: per bundle and month of
application, AUC, KS, expected calibration error and the default rate per band, each with a
bootstrap confidence interval (resampling loans), so a month with few matured loans says how
little it knows. Pure numpy on what the store hands over; each statistic's resamples drawn at
once (the AUC's measured all together by rank sums)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.common.model_metrics import (
    auc_samples,
    expected_calibration_error,
    ks_statistic,
    roc_auc,
)

BOOTSTRAP_SAMPLES = 200
CONFIDENCE = 0.95
SEED = 20_261_129  # fixed: the same outcomes give the same intervals
DRAWS_PER_CHUNK = 2_000_000


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


def _interval(y: np.ndarray, p: np.ndarray, statistic: str, rng: np.random.Generator) -> Interval:
    measure = {"auc": roc_auc, "ks": ks_statistic, "ece": expected_calibration_error}[statistic]
    value = measure(y, p)
    if value is None:
        return Interval(None, None, None)
    # the same draws, in the same order, as one call per resample would take; in chunks of at
    # most DRAWS_PER_CHUNK indices, so a month of a hundred thousand loans stays small in memory
    samples: list[float] = []
    per_chunk = max(1, min(BOOTSTRAP_SAMPLES, DRAWS_PER_CHUNK // max(len(y), 1)))
    for start in range(0, BOOTSTRAP_SAMPLES, per_chunk):
        rows = min(per_chunk, BOOTSTRAP_SAMPLES - start)
        draws = rng.integers(0, len(y), size=(rows, len(y)))
        if statistic == "auc":
            found = auc_samples(y, p, draws)  # NaN: a one-class resample has no ranking
            samples.extend(found[~np.isnan(found)].tolist())
            continue
        bad = y[draws].sum(axis=1)
        for pick, n_bad in zip(draws, bad, strict=True):
            # a resample with one class has no ranking to measure
            if statistic == "ece" or 0 < n_bad < len(pick):
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
