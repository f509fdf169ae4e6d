"""How well a model ranks and prices risk, measured one way wherever it is measured: live on
matured loans (the outcomes service) and on a challenger before promotion (training's gate), so a
bundle's ECE at promotion and its live ECE alert against 0.02 mean the same thing. Pure numpy;
y = 1 means the member defaulted, p is the predicted probability of default."""

from __future__ import annotations

import numpy as np

ECE_BINS = 10


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """The largest gap between the defaulters' and the payers' cumulative PD distributions."""
    order = np.argsort(p, kind="stable")
    y_sorted = y[order]
    bad = np.cumsum(y_sorted) / max(y_sorted.sum(), 1)
    good = np.cumsum(1 - y_sorted) / max((1 - y_sorted).sum(), 1)
    return float(np.max(np.abs(bad - good)))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Share-weighted gap between predicted PD and realised default rate over equal-width bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total
