"""The loans core banking disburses for approved applications, and their instalments.

Pure and deterministic, so it is testable. A loan is the loan book's own where the book has one
for the application (`loans.application_id`): its principal, term, disbursement time and the
instalments due after disbursement. Otherwise (the synthetic world keeps only the history before
each application, its drawn `default_12m` and `outcome_at`) the loan is synthesized:

- disbursed at `applied_at` (world time; the decision's wall-clock time would put the loan
  years after its member's history), principal and term as applied for;
- a monthly schedule of min(term, 12) instalments, due on the disbursement's day of month,
  each of principal * (1 + flat interest * term / 12) / term (the world's pricing);
- a performing loan's instalments paid in full, mostly on time, a few days late now and then
  (never 90); a defaulted one (`default_12m == 1`) stops paying at one month of the schedule,
  and that instalment and every later one are recorded 90 or more days late, unpaid; the month
  is the one whose 90-day mark is nearest the book's `outcome_at` (the contract's outcome time),
  so the outcome the outcomes service derives is known when the book says;
- every draw is seeded by the book's application id, so a book application gets the same loan
  in every run (a baseline run and a shocked one differ only by the shock);
- `shock` (0..1, an economic shock) makes late payments likelier and longer, and turns a share
  of the loans the book says performed into defaults.

A loan's id is run-scoped (`L-` + the run's application id), as the application's is, so two
runs never write the same loan; its instalments' ids are `loan:due day` (`repayment_id`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from services.common.loan_terms import DEFAULT_DAYS_LATE, WINDOW_MONTHS, add_months
from simulator.scenario import ApplicationRequest, repayment_id
from training.contract import LoanBook
from training.world import FLAT_INTEREST_PER_YEAR

DEFAULTED_EXTRA_DAYS = 30  # a defaulted instalment is recorded 90 to 119 days late
#: a performing member's instalment: late with this probability, then 1..LATE_DAYS days late
LATE_PROBABILITY = 0.15
LATE_DAYS = 14
MAX_PERFORMING_DAYS_LATE = DEFAULT_DAYS_LATE - 1
#: under a full shock (1.0): late this much more often, this many times longer, and this share
#: of the loans the book says performed defaults instead
SHOCK_LATE_PROBABILITY = 0.45
SHOCK_LATENESS_FACTOR = 3.0
SHOCK_DEFAULT_SHARE = 0.25


@dataclass(frozen=True)
class Instalment:
    due_date: datetime
    amount_due_kes: float
    amount_paid_kes: float
    days_late: int
    recorded_at: datetime


@dataclass(frozen=True)
class Loan:
    loan_id: str
    application_id: str  # the run's (what Alama decided)
    member_id: str
    principal_kes: float
    term_months: int
    disbursed_at: datetime
    instalments: tuple[Instalment, ...]
    synthesized: bool  # False: the loan book's own loan and instalments


def loan_id(application: ApplicationRequest) -> str:
    return f"L-{application.application_id}"


def instalment_amount(principal_kes: float, term_months: int) -> float:
    """A flat-interest instalment, rounded to the shilling as the world prices them."""
    term = max(term_months, 1)
    return float(round(principal_kes * (1 + FLAT_INTEREST_PER_YEAR * term / 12) / term))


def schedule_months(term_months: int) -> int:
    return min(max(term_months, 1), WINDOW_MONTHS)


def seed_of(application_id: str) -> int:
    """A stable seed from an id (Python's `hash` changes between processes)."""
    return int.from_bytes(hashlib.sha256(application_id.encode()).digest()[:8], "big")


def default_month(disbursed_at: datetime, months: int, outcome_at: datetime | None) -> int | None:
    """The schedule month whose 90-day mark is nearest `outcome_at` (None when not given)."""
    if outcome_at is None:
        return None
    return min(
        range(1, months + 1),
        key=lambda m: abs(
            add_months(disbursed_at, m) + timedelta(days=DEFAULT_DAYS_LATE) - outcome_at
        ),
    )


def synthesize_loan(
    application: ApplicationRequest,
    *,
    defaulted: bool,
    outcome_at: datetime | None = None,
    shock: float = 0.0,
) -> Loan:
    """A loan and its min(term, 12) instalments for an application the book has no loan for;
    see the module docstring. Deterministic in the book's application id."""
    if not 0.0 <= shock <= 1.0:
        raise ValueError(f"the shock is a share between 0 and 1, got {shock}")
    rng = np.random.default_rng(seed_of(application.source_application_id))
    disbursed_at = application.applied_at
    months = schedule_months(application.term_months)
    amount = instalment_amount(application.amount_kes, application.term_months)
    # every draw is made whatever the outcome, so the shock changes outcomes, not the stream
    shock_default = bool(rng.random() < shock * SHOCK_DEFAULT_SHARE)
    late = rng.random(months) < LATE_PROBABILITY + shock * SHOCK_LATE_PROBABILITY
    late_days = rng.integers(1, LATE_DAYS + 1, months)
    arrears_days = rng.integers(0, DEFAULTED_EXTRA_DAYS, months)
    random_month = int(rng.integers(1, months + 1))
    stops_at: int | None = None
    if defaulted or shock_default:
        stops_at = (default_month(disbursed_at, months, outcome_at) if defaulted else None) or (
            random_month
        )
    lateness = 1.0 + shock * (SHOCK_LATENESS_FACTOR - 1.0)
    instalments = []
    for month in range(1, months + 1):
        due = add_months(disbursed_at, month)
        i = month - 1
        if stops_at is not None and month >= stops_at:
            days, paid = DEFAULT_DAYS_LATE + int(arrears_days[i]), 0.0
        else:
            scaled = math.ceil(int(late_days[i]) * lateness) if late[i] else 0
            days, paid = min(scaled, MAX_PERFORMING_DAYS_LATE), amount
        instalments.append(
            Instalment(
                due_date=due,
                amount_due_kes=amount,
                amount_paid_kes=paid,
                days_late=days,
                recorded_at=due + timedelta(days=days),
            )
        )
    return Loan(
        loan_id=loan_id(application),
        application_id=application.application_id,
        member_id=application.member_id,
        principal_kes=application.amount_kes,
        term_months=application.term_months,
        disbursed_at=disbursed_at,
        instalments=tuple(instalments),
        synthesized=True,
    )


def _utc(value: object) -> datetime:
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()  # type: ignore[arg-type]


def book_loans(book: LoanBook, applications: list[ApplicationRequest]) -> dict[str, Loan]:
    """Run application id -> the book's loan for it (the first disbursed, where several name
    the application), with its instalments due after disbursement, under the run's loan id.
    Applications the book has no loan for are left out."""
    loans = book.table("loans")
    if loans.empty:
        return {}
    wanted = {a.source_application_id for a in applications}
    rows = loans[loans["application_id"].astype(object).isin(wanted)]
    rows = rows.sort_values("disbursed_at", kind="stable").drop_duplicates("application_id")
    if rows.empty:
        return {}
    by_application = {str(r["application_id"]): r for _, r in rows.iterrows()}
    repayments = book.repayments
    repayments = repayments[repayments["loan_id"].astype(str).isin(rows["loan_id"].astype(str))]
    schedules = {
        str(loan): group.sort_values("due_date", kind="stable")
        for loan, group in repayments.groupby(repayments["loan_id"].astype(str))
    }
    out: dict[str, Loan] = {}
    for application in applications:
        row = by_application.get(application.source_application_id)
        if row is None:
            continue
        disbursed_at = _utc(row["disbursed_at"])
        schedule = schedules.get(str(row["loan_id"]), repayments.iloc[0:0])
        instalments = tuple(
            Instalment(
                due_date=_utc(r.due_date),
                amount_due_kes=float(r.amount_due_kes),
                amount_paid_kes=float(r.amount_paid_kes),
                days_late=int(r.days_late),
                recorded_at=_utc(r.recorded_at),
            )
            for r in schedule.itertuples(index=False)
            if _utc(r.due_date) > disbursed_at
        )
        out[application.application_id] = Loan(
            loan_id=loan_id(application),
            application_id=application.application_id,
            member_id=application.member_id,
            principal_kes=float(row["principal_kes"]),
            term_months=int(row["term_months"]),
            disbursed_at=disbursed_at,
            instalments=instalments,
            synthesized=False,
        )
    return out


@dataclass(frozen=True)
class BookOutcome:
    """What the book says happened after an application (None where it does not say)."""

    defaulted: bool | None
    outcome_at: datetime | None


def book_outcomes(book: LoanBook) -> dict[str, BookOutcome]:
    """Book application id -> its `default_12m` and `outcome_at`."""
    apps = book.applications
    out: dict[str, BookOutcome] = {}
    for source, label, at in zip(
        apps["application_id"].astype(str).tolist(),
        apps["default_12m"].astype(object).tolist(),
        apps["outcome_at"].astype(object).tolist(),
        strict=True,
    ):
        out[source] = BookOutcome(
            defaulted=None if pd.isna(label) else bool(int(label)),
            outcome_at=None if pd.isna(at) else _utc(at),
        )
    return out


def oracle_pds(book: LoanBook) -> dict[str, float]:
    """Book application id -> true probability of default, where the book knows it."""
    if book.oracle is None or book.oracle.empty:
        return {}
    return dict(
        zip(
            book.oracle["application_id"].astype(str).tolist(),
            book.oracle["true_pd"].astype(float).tolist(),
            strict=True,
        )
    )


def disburse(
    book: LoanBook, applications: list[ApplicationRequest], *, shock: float = 0.0
) -> list[Loan]:
    """A loan per application (the approved ones, in the caller's order): the book's where it
    has one, else synthesized from its outcome. An application whose outcome the book leaves
    empty (declined in reality, or not known yet) defaults by a draw of the oracle's true PD
    where the book has one, else performs."""
    outcomes = book_outcomes(book)
    pds = oracle_pds(book)
    from_book = book_loans(book, applications)
    loans = []
    for application in applications:
        found = from_book.get(application.application_id)
        if found is not None:
            loans.append(found)
            continue
        source = application.source_application_id
        known = outcomes.get(source, BookOutcome(None, None))
        defaulted = known.defaulted
        if defaulted is None:
            draw = np.random.default_rng(seed_of(f"pd/{source}")).random()
            defaulted = bool(draw < pds.get(source, 0.0))
        loans.append(
            synthesize_loan(
                application,
                defaulted=defaulted,
                outcome_at=known.outcome_at if known.defaulted else None,
                shock=shock,
            )
        )
    return loans


def repayments_frame(loans: list[Loan]) -> pd.DataFrame:
    """The loans' instalments as contract repayment rows with a `repayment_id` (what
    `KafkaCoreBanking.publish_repayments` sends), in recording order."""
    rows = [
        {
            "repayment_id": repayment_id(loan.loan_id, i.due_date),
            "loan_id": loan.loan_id,
            "member_id": loan.member_id,
            "due_date": i.due_date,
            "amount_due_kes": i.amount_due_kes,
            "amount_paid_kes": i.amount_paid_kes,
            "days_late": i.days_late,
            "recorded_at": i.recorded_at,
        }
        for loan in loans
        for i in loan.instalments
    ]
    columns = [
        "repayment_id",
        "loan_id",
        "member_id",
        "due_date",
        "amount_due_kes",
        "amount_paid_kes",
        "days_late",
        "recorded_at",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("due_date", "recorded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values(["recorded_at", "repayment_id"], ignore_index=True)
