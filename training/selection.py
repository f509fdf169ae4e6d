"""Model selection on cross-validated folds: a richer model ships only if it beats the simple one.

On a loan book nobody here trained on, tuned LightGBM lost to a plain L2 logistic regression by
0.08 AUC (issue 9). Choosing on one validation split lets noise pick the flexible model; here every
candidate is scored on the same outer folds from its out-of-fold predictions, and a candidate
replaces the simple model only when its mean paired per-fold gain exceeds one standard error of
those gains (the one-standard-error rule, as `training.calibration` uses for isotonic vs Platt).
Paired, because the folds are shared: fold difficulty cancels out of the differences.

`select_model` takes out-of-fold predictions from anywhere (the tabular command, the synthetic
pipeline), so the rule is written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from training.evaluate import classification_metrics

#: Metrics reported per fold; `metric` picks the one that decides.
METRICS: tuple[str, ...] = ("auc", "pr_auc", "ks", "brier", "ece")


@dataclass(frozen=True)
class CandidateScores:
    """One candidate's metrics: per fold (fold order), their mean and sample sd, and pooled OOF."""

    per_fold: dict[str, list[float]]
    mean: dict[str, float]
    sd: dict[str, float]
    pooled: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    """A candidate against the simple model on the deciding metric, paired by fold."""

    mean_gain: float  # mean over folds of (candidate - simple); positive is better
    standard_error: float  # sd of the per-fold gains / sqrt(folds)
    beats_simple: bool  # mean_gain > standard_error


@dataclass(frozen=True)
class Selection:
    winner: str
    simple: str
    metric: str
    margin: float  # the winner's mean gain over the simple model (0.0 when the simple one wins)
    standard_error: float  # of that gain (0.0 when the simple one wins)
    folds: int
    candidates: dict[str, CandidateScores]
    comparisons: dict[str, Comparison]  # every candidate but the simple one

    @property
    def rule(self) -> str:
        return (
            f"a candidate replaces {self.simple} only if its mean per-fold {self.metric} gain "
            "exceeds one standard error of the paired gains; the best such candidate wins"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rule": self.rule}


def fold_ids(test_indices: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Per-row fold number from the test indices of each split (every row in exactly one)."""
    ids = np.full(n, -1, dtype=np.int64)
    for fold, index in enumerate(test_indices):
        if np.any(ids[index] >= 0):
            raise ValueError("a row is in more than one test fold")
        ids[index] = fold
    if np.any(ids < 0):
        raise ValueError("every row must be in one test fold")
    return ids


def score_candidate(p: np.ndarray, y: np.ndarray, folds: np.ndarray) -> CandidateScores:
    """`classification_metrics` on each fold's out-of-fold predictions and on all of them."""
    per_fold: dict[str, list[float]] = {m: [] for m in METRICS}
    for fold in np.unique(folds):
        rows = folds == fold
        values = classification_metrics(y[rows], p[rows])
        for m in METRICS:
            per_fold[m].append(values[m])
    pooled = classification_metrics(y, p)
    return CandidateScores(
        per_fold=per_fold,
        mean={m: float(np.mean(v)) for m, v in per_fold.items()},
        sd={m: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for m, v in per_fold.items()},
        pooled={m: pooled[m] for m in METRICS},
    )


def select_model(
    oof: Mapping[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    simple: str = "logistic_regression",
    *,
    metric: str = "auc",
) -> Selection:
    """Pick the model to ship from out-of-fold PDs (name -> [N]), outcomes and fold ids.

    `metric` must be one where higher is better (auc, pr_auc, ks). Each fold needs both
    outcomes (stratified folds give that).
    """
    y_arr = np.asarray(y).astype(np.int64)
    fold_arr = np.asarray(folds)
    if simple not in oof:
        raise ValueError(f"the simple model {simple!r} is not among the candidates {list(oof)}")
    if metric not in ("auc", "pr_auc", "ks"):
        raise ValueError(f"metric must be auc, pr_auc or ks (higher is better), not {metric!r}")
    if fold_arr.shape != y_arr.shape:
        raise ValueError("folds must give one fold id per row")
    n_folds = int(np.unique(fold_arr).size)
    if n_folds < 2:
        raise ValueError("model selection needs at least 2 folds")
    scores = {
        name: score_candidate(np.asarray(p, dtype=np.float64), y_arr, fold_arr)
        for name, p in oof.items()
    }
    base = np.asarray(scores[simple].per_fold[metric])
    comparisons: dict[str, Comparison] = {}
    for name, s in scores.items():
        if name == simple:
            continue
        gains = np.asarray(s.per_fold[metric]) - base
        se = float(np.std(gains, ddof=1) / np.sqrt(n_folds))
        mean_gain = float(np.mean(gains))
        comparisons[name] = Comparison(mean_gain, se, bool(mean_gain > se))
    beaters = [name for name, c in comparisons.items() if c.beats_simple]
    if not beaters:
        return Selection(simple, simple, metric, 0.0, 0.0, n_folds, scores, comparisons)
    winner = max(beaters, key=lambda name: (scores[name].mean[metric], name))
    chosen = comparisons[winner]
    return Selection(
        winner,
        simple,
        metric,
        chosen.mean_gain,
        chosen.standard_error,
        n_folds,
        scores,
        comparisons,
    )
