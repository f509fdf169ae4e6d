"""Loans core banking disburses: synthesized schedules are deterministic, and the outcomes
service's rule reads them as the book says (defaulted, or performing once complete)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pandas as pd
import pytest

from services.common.loan_terms import add_months
from services.outcomes.rules import Instalment as RuleInstalment
from services.outcomes.rules import Known, outcome_of
from simulator.loans import (
    DEFAULT_DAYS_LATE,
    Loan,
    book_outcomes,
    disburse,
    instalment_amount,
    repayments_frame,
    synthesize_loan,
)
from simulator.scenario import ApplicationRequest, build_scenario, repayment_id
from training.contract import LoanBook


def judged(loan: Loan, *, drop_last: bool = False) -> Known | None:
    instalments = loan.instalments[:-1] if drop_last else loan.instalments
    return outcome_of(
        loan.disbursed_at,
        loan.term_months,
        [RuleInstalment(i.due_date, i.days_late, i.recorded_at) for i in instalments],
    )


@pytest.fixture(scope="module")
def applications(small_book: LoanBook) -> list[ApplicationRequest]:
    return build_scenario(small_book, 120, "loans").applications


def test_a_synthesized_loan_is_deterministic_and_run_scoped(
    applications: list[ApplicationRequest],
) -> None:
    application = applications[0]
    first = synthesize_loan(application, defaulted=False)
    assert first == synthesize_loan(application, defaulted=False)
    assert first.loan_id == f"L-{application.application_id}"
    assert first.application_id == application.application_id
    assert first.synthesized
    # the draws follow the book's application, not the run: another run, the same schedule
    again = dataclasses.replace(application, application_id="other-run-id")
    assert synthesize_loan(again, defaulted=False).instalments == first.instalments


@pytest.mark.parametrize("term", [3, 6, 12, 24])
def test_the_schedule_is_monthly_min_term_12_instalments_at_flat_interest(
    applications: list[ApplicationRequest], term: int
) -> None:
    application = dataclasses.replace(applications[1], term_months=term, amount_kes=12_000.0)
    loan = synthesize_loan(application, defaulted=False)
    assert loan.disbursed_at == application.applied_at
    assert len(loan.instalments) == min(term, 12)
    assert [i.due_date for i in loan.instalments] == [
        add_months(loan.disbursed_at, m) for m in range(1, min(term, 12) + 1)
    ]
    expected = round(12_000.0 * (1 + 0.12 * term / 12) / term)
    assert all(
        i.amount_due_kes == expected == instalment_amount(12_000.0, term) for i in loan.instalments
    )
    assert all(i.recorded_at == i.due_date + timedelta(days=i.days_late) for i in loan.instalments)


def test_a_performing_loan_is_performing_once_complete_and_not_before(
    applications: list[ApplicationRequest],
) -> None:
    for application in applications[:40]:
        loan = synthesize_loan(application, defaulted=False)
        assert all(0 <= i.days_late < DEFAULT_DAYS_LATE for i in loan.instalments)
        assert all(i.amount_paid_kes == i.amount_due_kes for i in loan.instalments)
        known = judged(loan)
        assert known is not None and not known.defaulted
        assert known.outcome_at == max(i.recorded_at for i in loan.instalments)
        assert judged(loan, drop_last=True) is None  # still maturing


def test_a_defaulted_loan_goes_90_days_late_within_12_months_when_the_book_says(
    small_book: LoanBook, applications: list[ApplicationRequest]
) -> None:
    outcomes = book_outcomes(small_book)
    for application in applications[:40]:
        book_at = outcomes[application.source_application_id].outcome_at
        loan = synthesize_loan(application, defaulted=True, outcome_at=book_at)
        late = [i for i in loan.instalments if i.days_late >= DEFAULT_DAYS_LATE]
        assert late and late[0].due_date <= add_months(loan.disbursed_at, 12)
        assert all(i.amount_paid_kes == 0 for i in late)
        assert late == list(loan.instalments[len(loan.instalments) - len(late) :])  # stops paying
        known = judged(loan)
        assert known is not None and known.defaulted
        assert known.outcome_at == late[0].due_date + timedelta(days=DEFAULT_DAYS_LATE)
        if application.term_months >= 12 and book_at is not None:
            # the month whose 90-day mark is nearest the book's outcome time
            assert abs(known.outcome_at - book_at) <= timedelta(days=16)


def test_disbursing_the_book_reproduces_its_outcomes(
    small_book: LoanBook, applications: list[ApplicationRequest]
) -> None:
    loans = disburse(small_book, applications)
    assert loans == disburse(small_book, applications)
    assert [loan.application_id for loan in loans] == [a.application_id for a in applications]
    outcomes = book_outcomes(small_book)
    labels = [outcomes[a.source_application_id].defaulted for a in applications]
    assert any(labels) and not all(labels)
    for loan, label in zip(loans, labels, strict=True):
        known = judged(loan)
        assert known is not None and known.defaulted == label


def test_a_shock_raises_lateness_and_defaults(
    small_book: LoanBook, applications: list[ApplicationRequest]
) -> None:
    calm = disburse(small_book, applications)
    shocked = disburse(small_book, applications, shock=1.0)

    def defaults(loans: list[Loan]) -> int:
        return sum(bool((k := judged(loan)) and k.defaulted) for loan in loans)

    def late_days(loans: list[Loan]) -> int:
        return sum(i.days_late for loan in loans for i in loan.instalments if i.days_late < 90)

    assert defaults(shocked) > defaults(calm)
    assert late_days(shocked) > late_days(calm)
    # a default the book records stays one
    for before, after in zip(calm, shocked, strict=True):
        if (k := judged(before)) and k.defaulted:
            assert (s := judged(after)) is not None and s.defaulted
    with pytest.raises(ValueError, match="shock"):
        synthesize_loan(applications[0], defaulted=False, shock=1.5)


def test_the_books_own_loan_and_its_later_instalments_are_used(
    small_book: LoanBook, applications: list[ApplicationRequest]
) -> None:
    application = applications[0]
    disbursed = pd.Timestamp(application.applied_at) + pd.Timedelta(days=3)
    loans = pd.DataFrame(
        {
            "loan_id": ["BOOK-LOAN"],
            "member_id": [application.member_id],
            "application_id": [application.source_application_id],
            "product": [application.product],
            "principal_kes": pd.array([5_000.0], dtype="Float64"),
            "term_months": pd.array([2], dtype="Int64"),
            "disbursed_at": pd.to_datetime([disbursed], utc=True),
            "status": ["closed"],
        }
    )
    dues = [
        disbursed - pd.Timedelta(days=10),
        *(disbursed + pd.DateOffset(months=m) for m in (1, 2)),
    ]
    repayments = pd.DataFrame(
        {
            "loan_id": ["BOOK-LOAN"] * 3,
            "member_id": [application.member_id] * 3,
            "due_date": pd.to_datetime(dues, utc=True),
            "amount_due_kes": pd.array([2_550.0] * 3, dtype="Float64"),
            "amount_paid_kes": pd.array([2_550.0] * 3, dtype="Float64"),
            "days_late": pd.array([0, 4, 0], dtype="Int64"),
            "recorded_at": pd.to_datetime(dues, utc=True),
        }
    )
    book = dataclasses.replace(
        small_book,
        tables={
            **small_book.tables,
            "loans": pd.concat([small_book.table("loans"), loans], ignore_index=True),
            "repayments": pd.concat([small_book.repayments, repayments], ignore_index=True),
        },
    )
    own, synthesized = disburse(book, applications[:2])
    assert not own.synthesized and synthesized.synthesized
    assert own.loan_id == f"L-{application.application_id}"
    assert (own.principal_kes, own.term_months) == (5_000.0, 2)
    assert own.disbursed_at == disbursed.to_pydatetime()
    assert [i.days_late for i in own.instalments] == [4, 0]  # the one due before is left out
    known = judged(own)
    assert known is not None and not known.defaulted


def test_instalments_become_repayment_rows_with_stable_ids(
    small_book: LoanBook, applications: list[ApplicationRequest]
) -> None:
    loans = disburse(small_book, applications[:10])
    frame = repayments_frame(loans)
    assert len(frame) == sum(len(loan.instalments) for loan in loans)
    assert frame["repayment_id"].is_unique
    first = loans[0]
    ids = set(frame.loc[frame["loan_id"] == first.loan_id, "repayment_id"])
    assert ids == {repayment_id(first.loan_id, i.due_date) for i in first.instalments}
    assert frame["recorded_at"].is_monotonic_increasing
