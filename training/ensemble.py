"""The weighted GBM + LSTM ensemble: one weight, fitted on validation, in log-odds space.

Averaging log-odds rather than probabilities keeps the blend sharp where both models agree; a
single weight on a grid cannot overfit the validation set the way a free stacker could.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss

from services.common.decision import EnsembleWeights

EPS = 1e-6


def fit_ensemble(p_gbm: np.ndarray, p_lstm: np.ndarray, y: np.ndarray) -> EnsembleWeights:
    """The GBM weight in [0, 1] (step 0.02) with the lowest validation log loss."""
    grid = np.linspace(0.0, 1.0, 51)
    losses = [
        log_loss(y, EnsembleWeights(w, 1 - w).combine(p_gbm, p_lstm), labels=[0, 1]) for w in grid
    ]
    w = float(grid[int(np.argmin(losses))])
    return EnsembleWeights(gbm=w, lstm=1.0 - w)


def cross_fitted_ensemble(
    p_gbm: np.ndarray, p_lstm: np.ndarray, y: np.ndarray, folds: np.ndarray
) -> np.ndarray:
    """Each row's ensemble PD from a weight fitted on the other folds only.

    The shipped weight is fitted on the whole validation set, so the ensemble's validation AUC
    flatters it; these out-of-fold PDs are what judging it against the simple model needs.
    """
    out = np.zeros(len(y), dtype=np.float64)
    for fold in np.unique(folds):
        held = folds == fold
        weights = fit_ensemble(p_gbm[~held], p_lstm[~held], y[~held])
        out[held] = weights.combine(p_gbm[held], p_lstm[held])
    return out
