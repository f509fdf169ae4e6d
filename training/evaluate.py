"""Model evaluation: discrimination, calibration and per-group fairness.

Every evaluation reports the same numbers (AUC, PR-AUC, KS, Brier, ECE, and fairness by
protected attribute) so models, retrainings and the oracle can be compared like for like.
Convention: y = 1 means the member defaulted and p is the predicted probability of default.
Outputs are plain floats and dicts so reports go straight to JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

if TYPE_CHECKING:
    from training.contract import LoanBook

#: DESIGN.md "What good means": disparate impact ratio in [0.90, 1.10], equal opportunity < 0.05.
DISPARATE_IMPACT_RANGE = (0.90, 1.10)
EQUAL_OPPORTUNITY_MAX = 0.05


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y)
    p_arr = np.asarray(p, dtype=np.float64)
    if y_arr.ndim != 1 or y_arr.shape != p_arr.shape or y_arr.size == 0:
        raise ValueError("y and p must be non-empty 1-D arrays of the same length")
    if not np.all(np.isin(y_arr, (0, 1))):
        raise ValueError("y must be 0 (repaid) or 1 (defaulted)")
    if not np.all(np.isfinite(p_arr)):
        raise ValueError("p must be finite")
    return y_arr.astype(np.int64), p_arr


def _both_classes(y: np.ndarray) -> None:
    if np.unique(y).size < 2:
        raise ValueError("AUC and KS need both defaults and repayments")


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score distributions of defaulters and
    repayers, i.e. max |TPR - FPR| over all thresholds (the ROC curve visits every jump)."""
    y_arr, p_arr = _check(y, p)
    _both_classes(y_arr)
    fpr, tpr, _ = roc_curve(y_arr, p_arr)
    return float(np.max(np.abs(tpr - fpr)))


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision, no interpolation) for defaults.

    With rare defaults ROC AUC stays high while most flagged members are still good ones; PR-AUC
    shows that, and its no-skill value is the default rate rather than 0.5.
    """
    y_arr, p_arr = _check(y, p)
    _both_classes(y_arr)
    return float(average_precision_score(y_arr, p_arr))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Weighted mean of |mean(p) - mean(y)| over equal-frequency (quantile) bins of p.

    Quantile bins because PDs crowd near zero (most members repay): equal-width bins would put
    nearly everyone in the first bin and hide miscalibration among the riskier applicants. Bin
    edges are quantiles of p and tied p values stay in one bin, so bins can be a little unequal
    (a step-shaped isotonic output has many ties); empty bins are dropped.
    """
    y_arr, p_arr = _check(y, p)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    inner_edges = np.quantile(p_arr, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    bins = np.searchsorted(inner_edges, p_arr, side="right")
    counts = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p_arr, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y_arr.astype(np.float64), minlength=n_bins)
    used = counts > 0
    gaps = np.abs(sum_p[used] - sum_y[used]) / counts[used]
    return float(np.sum(gaps * counts[used]) / y_arr.size)


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """auc, pr_auc, ks, brier and ece (10 quantile bins) of predicted PDs p against outcomes y."""
    y_arr, p_arr = _check(y, p)
    _both_classes(y_arr)
    return {
        "auc": float(roc_auc_score(y_arr, p_arr)),
        "pr_auc": float(average_precision_score(y_arr, p_arr)),
        "ks": ks_statistic(y_arr, p_arr),
        "brier": float(brier_score_loss(y_arr, p_arr)),
        "ece": expected_calibration_error(y_arr, p_arr),
    }


def _plain(value: Any) -> float | None:
    """A JSON-safe float; None where a quantity is undefined."""
    f = float(value)
    return None if math.isnan(f) else f


def _good_approval_rate(good: np.ndarray, approved: np.ndarray) -> float:
    """TPR (approval rate among good borrowers); NaN, not sklearn's 0, for a group with none."""
    return float(true_positive_rate(good, approved, pos_label=1)) if np.any(good == 1) else math.nan


def _bad_approval_rate(good: np.ndarray, approved: np.ndarray) -> float:
    """FPR (approval rate among defaulters); NaN, not sklearn's 0, for a group with none."""
    return (
        float(false_positive_rate(good, approved, pos_label=1)) if np.any(good == 0) else math.nan
    )


#: protected attributes kept beside the rows for auditing (never model inputs)
GROUP_ATTRIBUTES = ("gender", "age_band")


def protected_groups(book: LoanBook, index: np.ndarray) -> dict[str, np.ndarray]:
    """Per protected attribute the book holds, the group of each labelled application in
    `index` ("unknown" where the member's value is missing)."""
    apps = book.labelled
    members = book.members.set_index("member_id").loc[apps["member_id"].iloc[index]]
    return {
        attribute: members[attribute].astype(object).fillna("unknown").astype(str).to_numpy()
        for attribute in GROUP_ATTRIBUTES
        if attribute in members.columns and members[attribute].notna().any()
    }


def fairness_report(
    y_default: np.ndarray, approved: np.ndarray, groups: Mapping[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Per protected attribute: n, approval rate, TPR and FPR per group, and the summary gaps.

    The fairness question is access to credit, so fairlearn sees truth = good borrower (did not
    default) and prediction = approved: selection rate is the approval rate, TPR the approval rate
    among good borrowers (equal opportunity), FPR the approval rate among defaulters. Gaps are
    between the most and the least favoured group (fairlearn MetricFrame, between_groups):

    - disparate_impact_ratio: lowest approval rate / highest (= demographic_parity_ratio)
    - equal_opportunity_difference: largest TPR gap (= equal_opportunity_difference)
    - average_odds_difference: mean of the largest TPR gap and the largest FPR gap
      (= equalized_odds_difference with agg="mean")

    They equal fairlearn's helpers whenever every group has both outcomes; unlike the helpers, a
    group with no good borrowers (or no defaulters) has an undefined TPR (FPR), reported as None
    and left out of the gap instead of counting as a rate of 0. Undefined gaps are None.
    `within_targets` checks the DESIGN.md targets.
    """
    y_arr = np.asarray(y_default)
    approved_arr = np.asarray(approved)
    n = y_arr.shape[0] if y_arr.ndim == 1 else -1
    if n <= 0 or approved_arr.shape != (n,):
        raise ValueError("y_default and approved must be non-empty 1-D arrays of the same length")
    if not np.all(np.isin(y_arr, (0, 1))) or not np.all(np.isin(approved_arr, (0, 1))):
        raise ValueError("y_default and approved must be 0/1 (or boolean)")
    good = 1 - y_arr.astype(np.int64)
    approve = approved_arr.astype(np.int64)

    report: dict[str, dict[str, Any]] = {}
    for attribute, labels in groups.items():
        sensitive = np.asarray(labels).astype(str)
        if sensitive.shape != (n,):
            raise ValueError(f"group labels for {attribute!r} must have shape ({n},)")
        with warnings.catch_warnings():
            # 0/0 rates (nobody approved anywhere) warn; they are reported as None instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = MetricFrame(
                metrics={
                    "n": count,
                    "approval_rate": selection_rate,
                    "tpr": _good_approval_rate,
                    "fpr": _bad_approval_rate,
                },
                y_true=good,
                y_pred=approve,
                sensitive_features=sensitive,
            )
            ratio = frame.ratio(method="between_groups")
            gap = frame.difference(method="between_groups")
        per_group = {
            str(g): {
                "n": int(row["n"]),
                "approval_rate": _plain(row["approval_rate"]),
                "tpr": _plain(row["tpr"]),
                "fpr": _plain(row["fpr"]),
            }
            for g, row in frame.by_group.iterrows()
        }
        di = _plain(ratio["approval_rate"])
        eod = _plain(gap["tpr"])
        aod = _plain((gap["tpr"] + gap["fpr"]) / 2.0)
        report[attribute] = {
            "groups": per_group,
            "disparate_impact_ratio": di,
            "equal_opportunity_difference": eod,
            "average_odds_difference": aod,
            "within_targets": bool(
                di is not None
                and eod is not None
                and DISPARATE_IMPACT_RANGE[0] <= di <= DISPARATE_IMPACT_RANGE[1]
                and eod < EQUAL_OPPORTUNITY_MAX
            ),
        }
    return report
