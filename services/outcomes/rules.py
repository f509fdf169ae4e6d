"""When a loan's outcome is known, by the data contract's default: 90 or more days past due on an
instalment due within 12 months of disbursement (`docs/data-contract.md`, `default_12m`).

Pure, so the rule is tested on its own and replays decide the same. An instalment's `days_late`
is the lender's record of how far past due it was; the outcome is:

- defaulted as soon as an instalment due in the window is recorded 90 or more days late (known
  at that instalment's 90-day mark);
- performing once every month of the window that the schedule covers (12, or the term when
  shorter) has a recorded instalment and none reached 90 days (known when the last was recorded);
- not yet known otherwise (the loan is still maturing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.loan_terms import DEFAULT_DAYS_LATE, WINDOW_MONTHS, add_months


@dataclass(frozen=True)
class Instalment:
    due_date: datetime
    days_late: int
    recorded_at: datetime


@dataclass(frozen=True)
class Known:
    defaulted: bool
    outcome_at: datetime
    max_days_late: int
    instalments_observed: int


def outcome_of(
    disbursed_at: datetime, term_months: int, instalments: Iterable[Instalment]
) -> Known | None:
    """The loan's outcome if it is known from these instalments, else None (still maturing)."""
    window_end = add_months(disbursed_at, WINDOW_MONTHS)
    in_window = sorted(
        (i for i in instalments if disbursed_at < i.due_date <= window_end),
        key=lambda i: i.due_date,
    )
    if not in_window:
        return None
    worst = max(i.days_late for i in in_window)
    late = [i for i in in_window if i.days_late >= DEFAULT_DAYS_LATE]
    if late:
        first = min(late, key=lambda i: i.due_date)
        return Known(
            defaulted=True,
            outcome_at=first.due_date + timedelta(days=DEFAULT_DAYS_LATE),
            max_days_late=worst,
            instalments_observed=len(in_window),
        )
    months_due = min(max(term_months, 1), WINDOW_MONTHS)
    # the schedule's months: 1..months_due after disbursement (a weekly schedule has several
    # instalments a month; each month must have at least one recorded)
    covered = {_months_after(disbursed_at, i.due_date) for i in in_window}
    if not all(m in covered for m in range(1, months_due + 1)):
        return None
    return Known(
        defaulted=False,
        outcome_at=max(i.recorded_at for i in in_window),
        max_days_late=worst,
        instalments_observed=len(in_window),
    )


def _months_after(start: datetime, moment: datetime) -> int:
    """Which month of the schedule `moment` falls in: 1 for (start, start + 1 month]."""
    months = (moment.year - start.year) * 12 + moment.month - start.month
    return months + (moment.day > start.day)
