"""The logistic-regression scorecard baseline (optbinning): what a bureau analyst would build.

It bins each tabular feature optimally (monotone WoE), fits a logistic regression on the WoE
values, and is the bar that the GBM and LSTM must clear.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OptScorecard
from sklearn.linear_model import LogisticRegression


def fit_logistic_scorecard(
    x_train: np.ndarray, y_train: np.ndarray, feature_names: tuple[str, ...]
) -> OptScorecard:
    frame = pd.DataFrame(x_train, columns=list(feature_names))
    binning = BinningProcess(
        variable_names=list(feature_names),
        binning_fit_params={name: {"monotonic_trend": "auto_asc_desc"} for name in feature_names},
    )
    scorecard = OptScorecard(
        binning_process=binning,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scorecard.fit(frame, np.asarray(y_train).astype(int))
    return scorecard


def predict_logistic_scorecard(
    scorecard: OptScorecard, x: np.ndarray, feature_names: tuple[str, ...]
) -> np.ndarray:
    frame = pd.DataFrame(x, columns=list(feature_names))
    return np.asarray(scorecard.predict_proba(frame))[:, 1]
