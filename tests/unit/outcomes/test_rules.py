"""The data contract's default on a loan's instalments: 90+ days past due within 12 months of
disbursement; performing only once the whole window (or a shorter term) is on record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.loan_terms import add_months
from services.outcomes.rules import Instalment, outcome_of

DISBURSED = datetime(2025, 1, 31, 10, tzinfo=UTC)


def monthly(n: int, late: dict[int, int] | None = None, start: int = 1) -> list[Instalment]:
    late = late or {}
    out = []
    for k in range(start, start + n):
        due = add_months(DISBURSED, k)
        days = late.get(k, 0)
        out.append(Instalment(due, days, due + timedelta(days=min(days, 30) + 1)))
    return out


def test_month_ends_are_kept_when_adding_months() -> None:
    assert add_months(DISBURSED, 1) == datetime(2025, 2, 28, 10, tzinfo=UTC)
    assert add_months(DISBURSED, 13) == datetime(2026, 2, 28, 10, tzinfo=UTC)


def test_an_instalment_90_days_late_in_the_window_is_a_default_known_at_its_90_day_mark() -> None:
    known = outcome_of(DISBURSED, 24, monthly(5, {5: 95, 3: 20}))
    assert known is not None and known.defaulted
    assert known.outcome_at == add_months(DISBURSED, 5) + timedelta(days=90)
    assert (known.max_days_late, known.instalments_observed) == (95, 5)


def test_lateness_after_the_window_does_not_count() -> None:
    known = outcome_of(DISBURSED, 24, monthly(14, {13: 120, 14: 150}))
    assert known is not None and not known.defaulted and known.max_days_late == 0


def test_a_performing_loan_is_known_only_when_every_month_of_the_window_is_on_record() -> None:
    assert outcome_of(DISBURSED, 24, monthly(11)) is None  # month 12 not recorded yet
    gap = [i for i in monthly(12) if i.due_date != add_months(DISBURSED, 6)]
    assert outcome_of(DISBURSED, 24, gap) is None  # a month missing: not known
    known = outcome_of(DISBURSED, 24, monthly(12, {4: 89}))
    assert known is not None and not known.defaulted and known.max_days_late == 89
    assert known.outcome_at == max(i.recorded_at for i in monthly(12, {4: 89}))


def test_a_short_term_loan_matures_with_its_term() -> None:
    assert outcome_of(DISBURSED, 6, monthly(5)) is None
    known = outcome_of(DISBURSED, 6, monthly(6))
    assert known is not None and not known.defaulted


def test_weekly_instalments_cover_their_months() -> None:
    weekly = [
        Instalment(DISBURSED + timedelta(weeks=w), 0, DISBURSED + timedelta(weeks=w, days=1))
        for w in range(1, 27)
    ]
    known = outcome_of(DISBURSED, 6, weekly)
    assert known is not None and not known.defaulted and known.instalments_observed == 26


def test_nothing_on_record_is_not_known() -> None:
    assert outcome_of(DISBURSED, 12, []) is None
    before = [Instalment(DISBURSED - timedelta(days=30), 200, DISBURSED)]  # an earlier loan's
    assert outcome_of(DISBURSED, 12, before) is None
