"""Probability calibration: isotonic or Platt, chosen on validation data.

A ranking model's scores are not default probabilities; the scorecard, the decision bands and the
calibration target (ECE below 0.01) all need them to be. Fitting uses scikit-learn, but a fitted
`Calibrator` is a handful of numbers applied with plain numpy, so the serving side (which loads it
from the model bundle manifest) needs no scikit-learn and computes exactly what training measured.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.model_selection import StratifiedKFold

from services.common.decision import (
    METHODS,
    Calibrator,
    checked_probabilities,
    logit,
)


def _as_outcomes(y: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"outcomes must have shape ({n},), got {arr.shape}")
    if not np.all(np.isin(arr, (0, 1))):
        raise ValueError("outcomes must be 0 (repaid) or 1 (defaulted)")
    return arr.astype(np.int64)


def fit_calibrator(p: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """Fit one calibration method on raw probabilities p and outcomes y (1 = default)."""
    raw = checked_probabilities(p)
    outcomes = _as_outcomes(y, raw.shape[0])
    if method == "identity":
        return Calibrator("identity")
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    if np.unique(outcomes).size < 2:
        raise ValueError("calibration needs both defaults and repayments in the data")
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw, outcomes)
        return Calibrator(
            "isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    # Unpenalised: with one feature there is nothing to regularise, and a penalty would shrink the
    # slope towards 0 and pull every probability towards the base rate.
    lr = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    lr.fit(logit(raw).reshape(-1, 1), outcomes)
    return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def choose_calibrator(
    p_valid: np.ndarray, y_valid: np.ndarray, *, folds: int = 5, seed: int = 0
) -> tuple[Calibrator, dict[str, float]]:
    """Pick isotonic or Platt by stratified cross-validated Brier score on the validation set.

    Brier decides because it is a proper score that stays bounded: isotonic puts flat, extreme
    steps at the ends of its range, and one out-of-fold default landing on a step at EPS costs log
    loss ~14 and can swing the choice on its own. Log loss is still reported. Isotonic wins only if
    it beats Platt by more than one standard error of the paired per-fold differences (the
    one-standard-error rule): otherwise noise would pick the more flexible map about half the time
    when Platt is right. The winner is refitted on the whole validation set.

    Returns the calibrator and the CV means: `<method>_brier`, `<method>_log_loss`, plus `raw_brier`
    and `raw_log_loss` (uncalibrated, same folds) for reference.
    """
    raw = checked_probabilities(p_valid)
    outcomes = _as_outcomes(y_valid, raw.shape[0])
    if folds < 2:
        raise ValueError("folds must be at least 2")
    minority = int(min(outcomes.sum(), outcomes.size - outcomes.sum()))
    if minority < folds:
        raise ValueError(
            f"choosing a calibrator with {folds} folds needs at least {folds} defaults and "
            f"{folds} repayments; got {minority} of the rarer outcome"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    briers: dict[str, list[float]] = {"isotonic": [], "platt": [], "raw": []}
    losses: dict[str, list[float]] = {"isotonic": [], "platt": [], "raw": []}
    for train_idx, test_idx in splitter.split(raw, outcomes):
        y_test = outcomes[test_idx]
        for name in ("isotonic", "platt", "raw"):
            if name == "raw":
                pred = Calibrator("identity").apply(raw[test_idx])
            else:
                cal = fit_calibrator(raw[train_idx], outcomes[train_idx], name)
                pred = cal.apply(raw[test_idx])
            briers[name].append(float(brier_score_loss(y_test, pred)))
            losses[name].append(float(log_loss(y_test, pred, labels=[0, 1])))
    scores: dict[str, float] = {}
    for name in ("isotonic", "platt", "raw"):
        scores[f"{name}_brier"] = float(np.mean(briers[name]))
        scores[f"{name}_log_loss"] = float(np.mean(losses[name]))
    gain = np.asarray(briers["platt"]) - np.asarray(briers["isotonic"])
    standard_error = float(np.std(gain, ddof=1) / np.sqrt(folds))
    best = "isotonic" if float(np.mean(gain)) > standard_error else "platt"
    return fit_calibrator(raw, outcomes, best), scores
