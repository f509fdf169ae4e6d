"""The member's repayment and mobile-money history as a reviewer sees it: the sequence model's
own inputs, carried in the decision as scored (not re-read from the feature store, which may
have moved on since), with the steps nothing was observed in left empty rather than drawn as
zeros, and a short summary in words for those who cannot see the charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.features import (
    MOBILE_MONEY_SEQUENCES,
    MOBILE_MONEY_WEEKS,
    REPAYMENT_MONTHS,
    REPAYMENT_SEQUENCES,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision

DUE, PAID, LATE, REPAYMENT_MASK = REPAYMENT_SEQUENCES
INFLOW, OUTFLOW, BETTING, OVERDRAFT, COUNT, BALANCE, MM_MASK = MOBILE_MONEY_SEQUENCES


@dataclass(frozen=True)
class RepaymentSummary:
    months_observed: int
    due_kes: float
    paid_kes: float
    months_late: int  # paid after the due date
    worst_days_late: int


@dataclass(frozen=True)
class MobileMoneySummary:
    weeks_observed: int
    inflow_kes: float
    outflow_kes: float
    betting_kes: float
    last_balance_kes: float | None


def _series(decision: CreditDecision, name: str, steps: int) -> list[float] | None:
    if name not in decision.sequences:
        return None
    values = list(decision.sequences[name].values)
    return values if len(values) == steps else None


def _observed(values: list[float], mask: list[float]) -> list[float | None]:
    return [v if m > 0 else None for v, m in zip(values, mask, strict=True)]


def repayment_history(decision: CreditDecision) -> dict[str, Any] | None:
    """Per month, oldest first: amount due, amount paid and days late (None where no loan was
    due); None when the decision carries no repayment sequence (made before it was carried, or
    by a bundle without a sequence model)."""
    seqs = [_series(decision, n, REPAYMENT_MONTHS) for n in REPAYMENT_SEQUENCES]
    if any(s is None for s in seqs):
        return None
    due, paid, late, mask = (s for s in seqs if s is not None)
    return {
        "labels": [f"{i - REPAYMENT_MONTHS} mo" for i in range(REPAYMENT_MONTHS)],
        "due": _observed(due, mask),
        "paid": _observed(paid, mask),
        "days_late": _observed(late, mask),
    }


def mobile_money_history(decision: CreditDecision) -> dict[str, Any] | None:
    """Per week, oldest first: inflow, outflow, betting and the closing balance (None in weeks
    with no activity seen)."""
    names = (INFLOW, OUTFLOW, BETTING, BALANCE, MM_MASK)
    seqs = [_series(decision, n, MOBILE_MONEY_WEEKS) for n in names]
    if any(s is None for s in seqs):
        return None
    inflow, outflow, betting, balance, mask = (s for s in seqs if s is not None)
    return {
        "labels": [f"{i - MOBILE_MONEY_WEEKS} wk" for i in range(MOBILE_MONEY_WEEKS)],
        "inflow": _observed(inflow, mask),
        "outflow": _observed(outflow, mask),
        "betting": _observed(betting, mask),
        "balance": _observed(balance, mask),
    }


def repayment_summary(history: dict[str, Any]) -> RepaymentSummary:
    rows = [
        (d, p, late)
        for d, p, late in zip(history["due"], history["paid"], history["days_late"], strict=True)
        if d is not None
    ]
    return RepaymentSummary(
        months_observed=len(rows),
        due_kes=sum(d for d, _, _ in rows),
        paid_kes=sum(p for _, p, _ in rows),
        months_late=sum(1 for _, _, late in rows if late > 0),
        worst_days_late=int(max((late for _, _, late in rows), default=0)),
    )


def mobile_money_summary(history: dict[str, Any]) -> MobileMoneySummary:
    seen = [i for i, v in enumerate(history["inflow"]) if v is not None]
    return MobileMoneySummary(
        weeks_observed=len(seen),
        inflow_kes=sum(history["inflow"][i] for i in seen),
        outflow_kes=sum(history["outflow"][i] for i in seen),
        betting_kes=sum(history["betting"][i] for i in seen),
        last_balance_kes=history["balance"][seen[-1]] if seen else None,
    )
