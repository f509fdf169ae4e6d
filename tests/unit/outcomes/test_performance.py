"""Live performance on matured loans: the measures agree with their definitions, intervals
bracket the estimate, and a month with one class says it cannot rank."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.outcomes.performance import (
    BOOTSTRAP_SAMPLES,
    SEED,
    expected_calibration_error,
    ks_statistic,
    performance,
)


def _book(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.6, n)
    return (rng.random(n) < p).astype(np.float64), p


def test_a_calibrated_model_has_a_small_ece_and_a_shifted_one_a_large_one() -> None:
    y, p = _book(20_000)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.clip(p + 0.15, 0, 1)) > 0.1


def test_ks_separates_a_ranking_model_from_noise() -> None:
    y, p = _book(5_000)
    assert ks_statistic(y, p) > 0.2
    assert ks_statistic(y, np.random.default_rng(3).random(len(y))) < 0.1


def test_a_month_reports_auc_with_an_interval_and_the_default_rate_per_band() -> None:
    y, p = _book(2_000)
    bands = np.where(p < 0.15, "approve", np.where(p < 0.3, "review", "decline"))
    month = performance("v1", "2026-01", y.astype(bool).tolist(), p.tolist(), bands.tolist())
    assert month.matured == 2_000 and month.defaults == int(y.sum())
    assert month.auc.value == pytest.approx(roc_auc_score(y, p))
    assert month.auc.value is not None
    assert month.auc.low is not None and month.auc.high is not None
    assert month.auc.low < month.auc.value < month.auc.high
    n, bad, rate = month.bands["approve"]
    assert n == int((bands == "approve").sum()) and rate == pytest.approx(bad / n)
    assert month.bands["approve"][2] < month.bands["decline"][2]


def test_a_month_without_defaults_cannot_rank() -> None:
    month = performance("v1", "2026-02", [False] * 30, [0.1] * 30, ["approve"] * 30)
    assert month.auc.value is None and month.default_rate == 0.0
    assert month.ece.value == pytest.approx(0.1)


def _one_call_per_resample(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The AUC interval as its definition reads: roc_auc_score on each resample in turn."""
    rng = np.random.default_rng(SEED)
    samples = []
    for _ in range(BOOTSTRAP_SAMPLES):
        pick = rng.integers(0, len(y), len(y))
        if 0 < y[pick].sum() < len(pick):
            samples.append(roc_auc_score(y[pick], p[pick]))
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


@pytest.mark.parametrize("n", [12, 60, 400])
def test_the_auc_interval_is_the_one_roc_auc_score_gives_on_each_resample(n: int) -> None:
    y, p = _book(n, seed=n)
    p = np.round(p, 1)  # ties, averaged by both
    month = performance("v1", "2026-03", y.astype(bool).tolist(), p.tolist(), ["review"] * n)
    low, high = _one_call_per_resample(y, p)
    assert month.auc.value == pytest.approx(roc_auc_score(y, p))
    assert (month.auc.low, month.auc.high) == (pytest.approx(low), pytest.approx(high))


def test_resamples_drawn_in_chunks_give_the_same_month(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.outcomes.performance as perf

    y, p = _book(300, seed=5)
    whole = performance("v1", "2026-04", y.astype(bool).tolist(), p.tolist(), ["approve"] * 300)
    monkeypatch.setattr(perf, "DRAWS_PER_CHUNK", 7 * 300 + 11)  # 7 resamples a chunk, ragged end
    chunked = performance("v1", "2026-04", y.astype(bool).tolist(), p.tolist(), ["approve"] * 300)
    assert chunked == whole
