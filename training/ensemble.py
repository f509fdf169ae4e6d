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
