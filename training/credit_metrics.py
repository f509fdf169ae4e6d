"""What a credit team reads beside AUC, KS, Brier and ECE: the lending consequences of a model.

PR-AUC, approval and bad rates per decision band, the confusion matrices at the two cut-offs,
expected loss and profit under the SACCO's business cost, and the scorecard's information-value
table. Convention as in `training.evaluate`: y = 1 means the member defaulted, pd is the calibrated
probability of default. Outputs are plain dicts of floats and ints, ready for JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optbinning import Scorecard as OptScorecard

from services.common.decision import DecisionBands, checked_pd
from training.evaluate import pr_auc
from training.scorecard import BusinessCost

BANDS: tuple[str, ...] = ("approve", "review", "decline")


def _inputs(y: np.ndarray, pd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y)
    pd_arr = checked_pd(pd)
    if y_arr.ndim != 1 or y_arr.size == 0 or y_arr.shape != pd_arr.shape:
        raise ValueError("y and pd must be non-empty 1-D arrays of the same length")
    if not np.all(np.isin(y_arr, (0, 1))):
        raise ValueError("y must be 0 (repaid) or 1 (defaulted)")
    return y_arr.astype(np.int64), pd_arr


def band_rates(y: np.ndarray, pd: np.ndarray, bands: DecisionBands) -> dict[str, dict[str, Any]]:
    """Per band: applications, share of all, defaults and bad rate (None for an empty band)."""
    y_arr, pd_arr = _inputs(y, pd)
    decided = bands.band(pd_arr)
    table: dict[str, dict[str, Any]] = {}
    for band in BANDS:
        members = decided == band
        n = int(members.sum())
        defaults = int(y_arr[members].sum())
        table[band] = {
            "n": n,
            "share": n / y_arr.size,
            "defaults": defaults,
            "bad_rate": defaults / n if n else None,
        }
    return table


def _confusion(y: np.ndarray, flagged: np.ndarray) -> dict[str, int]:
    return {
        "defaulted_flagged": int(np.sum(flagged & (y == 1))),
        "defaulted_not_flagged": int(np.sum(~flagged & (y == 1))),
        "repaid_flagged": int(np.sum(flagged & (y == 0))),
        "repaid_not_flagged": int(np.sum(~flagged & (y == 0))),
    }


def confusion_at_cutoffs(
    y: np.ndarray, pd: np.ndarray, bands: DecisionBands
) -> dict[str, dict[str, Any]]:
    """Confusion matrices at both cut-offs, "flagged" meaning judged risky at that cut-off.

    - approve: flagged = not approved (pd >= approve_below_pd): review and decline together.
    - decline: flagged = declined (pd >= decline_at_or_above_pd).
    Each carries its threshold and the counts (defaulted / repaid x flagged / not flagged).
    """
    y_arr, pd_arr = _inputs(y, pd)
    return {
        "approve": {
            "threshold_pd": bands.approve_below_pd,
            **_confusion(y_arr, pd_arr >= bands.approve_below_pd),
        },
        "decline": {
            "threshold_pd": bands.decline_at_or_above_pd,
            **_confusion(y_arr, pd_arr >= bands.decline_at_or_above_pd),
        },
    }


def loss_and_profit(
    y: np.ndarray,
    pd: np.ndarray,
    bands: DecisionBands,
    amount_kes: np.ndarray,
    cost: BusinessCost,
) -> dict[str, float]:
    """Money under the business cost, in KES, for the whole set of applications.

    - expected_loss_kes: what the model expects the approved book to lose, sum of
      PD x LGD x amount over approved applications (the Basel EL = PD x LGD x EAD).
    - realised_loss_kes: LGD x amount over approved applications that did default.
    - profit_kes: minus the realised cost of the banded policy (`BusinessCost.outcome_costs`:
      margin on approved repayers, losses, review costs), also per application; beside it the
      profit of approving everyone and of perfect foresight (approve exactly the repayers).
    """
    y_arr, pd_arr = _inputs(y, pd)
    amount = np.asarray(amount_kes, dtype=np.float64)
    if amount.shape != y_arr.shape or not np.all(np.isfinite(amount)) or np.any(amount <= 0):
        raise ValueError("amount_kes must be positive, one per application")
    approve, review, decline = cost.outcome_costs(y_arr, amount)
    decided = bands.band(pd_arr)
    approved = decided == "approve"
    chosen = np.where(approved, approve, np.where(decided == "review", review, decline))
    profit = -float(np.sum(chosen))
    return {
        "expected_loss_kes": float(
            np.sum(pd_arr[approved] * cost.loss_given_default * amount[approved])
        ),
        "realised_loss_kes": float(
            np.sum(cost.loss_given_default * amount[approved & (y_arr == 1)])
        ),
        "approved_amount_kes": float(np.sum(amount[approved])),
        "profit_kes": profit,
        "profit_per_application_kes": profit / y_arr.size,
        "approve_all_profit_kes": -float(np.sum(approve)),
        "perfect_foresight_profit_kes": -float(np.sum(np.minimum(approve, decline))),
    }


def information_values(scorecard: OptScorecard) -> list[dict[str, Any]]:
    """The fitted scorecard's information-value table, strongest variable first.

    IV < 0.02 is conventionally useless, 0.02-0.1 weak, 0.1-0.3 medium, > 0.3 strong (and > 0.5
    suspiciously strong: a leak or a proxy of the outcome is worth checking).
    """
    summary = scorecard.binning_process_.summary()
    rows = [
        {
            "variable": str(row["name"]),
            "iv": float(row["iv"]),
            "bins": int(row["n_bins"]),
            "selected": bool(row["selected"]),
            "strength": _strength(float(row["iv"])),
        }
        for _, row in summary.iterrows()
    ]
    return sorted(rows, key=lambda r: (-r["iv"], r["variable"]))


def _strength(iv: float) -> str:
    if math.isnan(iv) or iv < 0.02:
        return "useless"
    if iv < 0.1:
        return "weak"
    if iv < 0.3:
        return "medium"
    return "strong" if iv <= 0.5 else "suspicious"


def credit_report(
    y: np.ndarray,
    pd: np.ndarray,
    bands: DecisionBands,
    amount_kes: np.ndarray,
    cost: BusinessCost,
) -> dict[str, Any]:
    """Everything above but the IV table (which needs a scorecard), for one set of PDs."""
    return {
        "pr_auc": pr_auc(y, pd),
        "default_rate": float(np.mean(np.asarray(y))),
        "bands": band_rates(y, pd, bands),
        "confusion": confusion_at_cutoffs(y, pd, bands),
        "money": loss_and_profit(y, pd, bands, amount_kes, cost),
    }
