"""The member's history on the item page: the decision's own sequence inputs, empty steps left
empty, and the summary in words agreeing with the charts."""

from __future__ import annotations

from services.common.features import (
    MOBILE_MONEY_SEQUENCES,
    MOBILE_MONEY_WEEKS,
    REPAYMENT_MONTHS,
    REPAYMENT_SEQUENCES,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.console.history import (
    mobile_money_history,
    mobile_money_summary,
    repayment_history,
    repayment_summary,
)


def _decision(sequences: dict[str, list[float]]) -> CreditDecision:
    decision = CreditDecision(decision_id="d-1")
    for name, values in sequences.items():
        decision.sequences[name].values.extend(values)
    return decision


def test_repayment_months_without_a_loan_due_are_empty_and_the_summary_counts_only_the_rest() -> (
    None
):
    pad = REPAYMENT_MONTHS - 3
    due = [0.0] * pad + [1000.0, 1000.0, 1200.0]
    paid = [0.0] * pad + [1000.0, 400.0, 1200.0]
    late = [0.0] * pad + [0.0, 35.0, 4.0]
    mask = [0.0] * pad + [1.0, 1.0, 1.0]
    carried = dict(zip(REPAYMENT_SEQUENCES, (due, paid, late, mask), strict=True))
    history = repayment_history(_decision(carried))
    assert history is not None
    assert history["due"][:pad] == [None] * pad
    assert history["paid"][-3:] == [1000.0, 400.0, 1200.0]
    assert history["labels"][-1] == "-1 mo" and len(history["labels"]) == REPAYMENT_MONTHS
    summary = repayment_summary(history)
    assert summary.months_observed == 3
    assert (summary.due_kes, summary.paid_kes) == (3200.0, 2600.0)
    assert (summary.months_late, summary.worst_days_late) == (2, 35)


def test_mobile_money_weeks_and_the_last_observed_balance() -> None:
    weeks = MOBILE_MONEY_WEEKS
    values = {name: [float(i) for i in range(weeks)] for name in MOBILE_MONEY_SEQUENCES}
    values["mm_mask_seq"] = [0.0] * (weeks - 2) + [1.0, 0.0]  # only the week before last seen
    history = mobile_money_history(_decision(values))
    assert history is not None
    assert history["inflow"].count(None) == weeks - 1
    summary = mobile_money_summary(history)
    assert summary.weeks_observed == 1
    assert summary.last_balance_kes == float(weeks - 2)


def test_a_decision_without_sequences_or_with_a_truncated_one_has_no_history() -> None:
    assert repayment_history(CreditDecision()) is None
    assert mobile_money_history(CreditDecision()) is None
    short = {name: [1.0] for name in REPAYMENT_SEQUENCES}
    assert repayment_history(_decision(short)) is None
