"""The scorecard (PD to 300-900 points) and the approve / review / decline bands.

Loan officers and members read points, not probabilities: the scorecard is the industry-standard
log-odds scaling (600 points at good:bad odds of 50:1, 20 points to double the odds). The decision
bands are chosen on validation data to minimise a stated business cost, so the thresholds follow
from money, not from taste, and change when the SACCO's own costs are plugged in.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from services.common.decision import DecisionBands, checked_pd


@dataclass(frozen=True)
class BusinessCost:
    """What each outcome costs, per KES lent (negative cost = income). Assumptions, not data:
    a SACCO should replace them with its own figures.

    - approve, member repays: earns `interest_margin` per KES lent. 0.18 is about what 1-1.5% a
      month on a reducing balance earns over an 18-24 month SACCO loan, net of a little funding
      cost (dividends on shares are paid whether or not the money is lent).
    - approve, member defaults: loses `loss_given_default` per KES lent. 0.65 because deposits and
      guarantors recover only about a third, late and at collection cost.
    - decline: 0 (the baseline every other outcome is measured against).
    - review: a loan officer's time and guarantor calls cost `review_cost_kes` per application
      (300 KES: about half an hour of a loaded officer's time). The officer declines
      `review_catch_rate` (0.6) of the defaulters but is no oracle: `review_false_decline_rate`
      (0.1) of the good borrowers are declined too, or walk away to a mobile lender while they
      wait. Everyone else reviewed is approved. Without that false-decline term review looks
      nearly free next to a default and the cost-optimal policy reviews almost everybody.
    - `typical_loan_kes` (50,000) is the loan size assumed for every application when the data
      has no amount column (a plain table given to `python -m training tabular`); costs scale
      with it, so the fixed review cost weighs less on larger loans.

    `config/business_cost.toml` holds these figures for a SACCO to edit; `from_file` reads it.
    """

    loss_given_default: float = 0.65
    interest_margin: float = 0.18
    review_cost_kes: float = 300.0
    review_catch_rate: float = 0.6
    review_false_decline_rate: float = 0.1
    typical_loan_kes: float = 50_000.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss_given_default <= 1.0:
            raise ValueError("loss_given_default must be within [0, 1]")
        for name in ("review_catch_rate", "review_false_decline_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.interest_margin < 0 or self.review_cost_kes < 0:
            raise ValueError("interest_margin and review_cost_kes must not be negative")
        if not self.typical_loan_kes > 0:
            raise ValueError("typical_loan_kes must be positive")

    @classmethod
    def from_file(cls, path: Path | str) -> BusinessCost:
        """Read the figures from a TOML file a SACCO edits (see `config/business_cost.toml`).

        Keys left out keep their defaults; an unknown key (a typo would otherwise be silently
        ignored and the default used) or a value that is not a finite number is refused, with an
        error naming the file and the key.
        """
        source = Path(path)
        try:
            document = tomllib.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{source}: business cost file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: not a valid TOML file: {exc}") from None
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for key, value in document.items():
            if key not in known:
                raise ValueError(
                    f"{source}: unknown key {key!r}; expected some of {', '.join(sorted(known))}"
                )
            # bool is an int to Python but never a cost.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{source}: key {key!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{source}: key {key!r} must be finite, got {value!r}")
            values[key] = float(value)
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def outcome_costs(
        self, y_default: np.ndarray, amount_kes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-application cost in KES of approving, reviewing and declining, given the truth."""
        y = np.asarray(y_default, dtype=np.float64)
        amount = np.asarray(amount_kes, dtype=np.float64)
        approve = np.where(y == 1, self.loss_given_default * amount, -self.interest_margin * amount)
        review = self.review_cost_kes + np.where(
            y == 1,
            (1.0 - self.review_catch_rate) * self.loss_given_default * amount,
            (1.0 - self.review_false_decline_rate) * approve,
        )
        decline = np.zeros_like(amount)
        return approve, review, decline


def choose_bands(
    pd_valid: np.ndarray,
    y_valid: np.ndarray,
    amount_kes: np.ndarray,
    cost: BusinessCost = BusinessCost(),
    *,
    max_review_rate: float = 0.2,
    grid_size: int = 400,
) -> tuple[DecisionBands, dict[str, float]]:
    """Thresholds minimising the realised cost on validation (actual outcomes, not the PDs, so a
    residual miscalibration cannot flatter the choice).

    Candidate thresholds are 0, 1 and `grid_size` quantiles of the validation PDs, so they sit
    where the applicants are; every ordered pair (approve_below <= decline_at) is evaluated from
    prefix sums. Equal thresholds mean no review band; 0 and 1 allow "never approve" and "never
    decline". `max_review_rate` caps the share sent to review: loan officers are finite, and
    review is so cheap next to a default on a KES 50,000 loan that the uncapped optimum can send
    half the applicants to a human, which defeats real-time scoring. 0.2 (one in five, a common
    referral rate in credit decisioning) is an assumption; pass 1.0 for no cap.

    Summary: expected_cost_kes (per application; negative is income), approve_rate, review_rate,
    decline_rate, approved_default_rate, and approve_all_cost_kes / decline_all_cost_kes to
    compare against.
    """
    pd = checked_pd(pd_valid)
    y = np.asarray(y_valid)
    amount = np.asarray(amount_kes, dtype=np.float64)
    n = pd.shape[0] if pd.ndim == 1 else 0
    if n == 0 or y.shape != (n,) or amount.shape != (n,):
        raise ValueError("pd_valid, y_valid and amount_kes must be equally long, non-empty, 1-D")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("y_valid must be 0 (repaid) or 1 (defaulted)")
    if not np.all(np.isfinite(amount)) or np.any(amount <= 0):
        raise ValueError("amount_kes must be positive")
    if not 0.0 <= max_review_rate <= 1.0:
        raise ValueError("max_review_rate must be within [0, 1]")

    order = np.argsort(pd, kind="stable")
    pd_sorted = pd[order]
    cum_a, cum_r, cum_d = (
        np.concatenate(([0.0], np.cumsum(c[order]))) for c in cost.outcome_costs(y, amount)
    )
    grid = np.unique(
        np.concatenate(([0.0, 1.0], np.quantile(pd_sorted, np.linspace(0.0, 1.0, grid_size))))
    )
    k = np.searchsorted(pd_sorted, grid, side="left")  # applicants with pd < threshold
    # Approve the k_i lowest, review up to k_j, decline the rest; rows i, columns j.
    totals = (cum_a[k] - cum_r[k])[:, None] + (cum_r[k] - cum_d[k])[None, :] + cum_d[n]
    reviewed = k[None, :] - k[:, None]
    feasible = (reviewed >= 0) & (reviewed <= max_review_rate * n)
    i, j = np.unravel_index(np.argmin(np.where(feasible, totals, np.inf)), totals.shape)
    bands = DecisionBands(float(grid[i]), float(grid[j]))

    decided = bands.band(pd)
    approved = decided == "approve"
    return bands, {
        "expected_cost_kes": float(totals[i, j] / n),
        "approve_rate": float(np.mean(approved)),
        "review_rate": float(np.mean(decided == "review")),
        "decline_rate": float(np.mean(decided == "decline")),
        "approved_default_rate": float(np.mean(y[approved])) if approved.any() else 0.0,
        "approve_all_cost_kes": float(cum_a[n] / n),
        "decline_all_cost_kes": 0.0,
    }
