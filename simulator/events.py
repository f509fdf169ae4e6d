"""The one place a loan book's rows become Kafka events: core banking's LoanApplicationSubmitted,
RepaymentRecorded and LoanDisbursed, and the mobile-money provider's MobileMoneyTransaction.

A run publishes its applications and repayments with these builders; `book_events` replays a
whole loan book in time order, whatever its source. Event ids are uuid5 of the row's id in the
book's namespace (`book_namespace`), so replaying a book, or re-running a scenario, publishes the
same ids and consumers deduplicate.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common import topics
from services.common.envelope import wrap
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1 import (
    applications_pb2,
    loans_pb2,
    mobile_money_pb2,
    repayments_pb2,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from simulator.loans import Loan
from simulator.scenario import (
    ApplicationRequest,
    application_requests,
    demographics,
    national_ids,
    repayment_id,
)
from training.contract import LoanBook

CORE_BANKING = "core-banking"
MOBILE_MONEY = "mobile-money"
#: The contract has no provider column; statements are M-Pesa's unless a book says otherwise.
PROVIDER = "mpesa"
#: The key of the stand-in pseudonym core banking sends instead of a national id (the gateway
#: uses its own secret for what arrives over REST).
NATIONAL_ID_HASH_KEY = b"alama-synthetic-world"
EVENT_CHUNK = 20_000  # rows turned into pending events at a time, so a large book stays lazy
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hash_national_id(national_id: str) -> str:
    """The keyed hash that stands in for the raw national id on the wire."""
    return hmac.new(NATIONAL_ID_HASH_KEY, national_id.encode(), hashlib.sha256).hexdigest()


def world_namespace(seed: int, n_members: int) -> uuid.UUID:
    """The event-id namespace of a synthetic world (seed and size), as it has always been."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://alama.local/world/{seed}/{n_members}")


def book_namespace(book: LoanBook) -> uuid.UUID:
    """A synthetic book keeps its world's namespace (seed and size, from `book.meta`); any other
    book is named by its source, so a re-import of the same lender's export, replayed again,
    repeats its event ids instead of doubling its history downstream."""
    seed = book.meta.get("world_seed")
    if seed is not None:
        return world_namespace(int(seed), len(book.members))
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://alama.local/loanbook/{book.source}")


def application_event_id(namespace: uuid.UUID, application_id: str) -> str:
    return str(uuid.uuid5(namespace, f"application/{application_id}"))


def repayment_event_id(namespace: uuid.UUID, repayment: str) -> str:
    return str(uuid.uuid5(namespace, f"repayment/{repayment}"))


def loan_event_id(namespace: uuid.UUID, loan_id: str) -> str:
    return str(uuid.uuid5(namespace, f"loan/{loan_id}"))


def transaction_event_id(namespace: uuid.UUID, transaction_id: str) -> str:
    return str(uuid.uuid5(namespace, f"transaction/{transaction_id}"))


def _nanoseconds(column: pd.Series) -> npt.NDArray[np.int64]:
    """UTC nanoseconds, whatever unit the parquet reader gave the column."""
    return pd.DatetimeIndex(pd.to_datetime(column, utc=True)).as_unit("ns").asi8


def _moment(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def application_envelope(
    application: ApplicationRequest, namespace: uuid.UUID, tenant: str = DEV_TENANT
) -> EventEnvelope:
    """LoanApplicationSubmitted as core banking publishes it, for its SACCO (`tenant`). The
    national id travels only as its keyed hash (empty when the book has none), a channel the
    wire cannot name as CHANNEL_UNSPECIFIED, an undeclared income as 0 (as the gateway sends
    it). The envelope time is applied_at, so a re-run sends identical bytes."""
    channel = (
        applications_pb2.Channel.Value(f"CHANNEL_{application.channel.upper()}")
        if application.channel
        else applications_pb2.CHANNEL_UNSPECIFIED
    )
    message = applications_pb2.LoanApplicationSubmitted(
        application_id=application.application_id,
        member_id=application.member_id,
        sacco_id=application.sacco_id,
        product=applications_pb2.LoanProduct.Value(f"LOAN_PRODUCT_{application.product.upper()}"),
        amount_kes=application.amount_kes,
        term_months=application.term_months,
        channel=channel,
        declared_monthly_income_kes=application.declared_monthly_income_kes or 0.0,
        national_id_hash=(
            hash_national_id(application.national_id) if application.national_id else ""
        ),
        tenant_id=tenant,
    )
    message.applied_at.FromDatetime(application.applied_at)
    message.attributes.update(application.attributes or {})
    return wrap(
        message,
        producer=CORE_BANKING,
        subject=application.member_id,
        event_id=application_event_id(namespace, application.application_id),
        occurred_at=application.applied_at,
    )


def loan_envelope(loan: Loan, namespace: uuid.UUID, tenant: str = DEV_TENANT) -> EventEnvelope:
    """LoanDisbursed as core banking publishes it, keyed like the member's repayments; the
    envelope time is the disbursement's, so a re-run sends identical bytes."""
    message = loans_pb2.LoanDisbursed(
        loan_id=loan.loan_id,
        application_id=loan.application_id,
        member_id=loan.member_id,
        tenant_id=tenant,
        principal_kes=loan.principal_kes,
        term_months=loan.term_months,
    )
    message.disbursed_at.FromDatetime(loan.disbursed_at)
    return wrap(
        message,
        producer=CORE_BANKING,
        subject=member_key(tenant, loan.member_id),
        event_id=loan_event_id(namespace, loan.loan_id),
        occurred_at=loan.disbursed_at,
    )


def _repayment_envelope(
    row: tuple[Any, ...], due_ns: int, recorded_ns: int, namespace: uuid.UUID, tenant: str
) -> EventEnvelope:
    rid, member, loan, amount_due, paid, late = row
    message = repayments_pb2.RepaymentRecorded(
        tenant_id=tenant,
        repayment_id=str(rid),
        member_id=str(member),
        loan_id=str(loan),
        amount_due_kes=float(amount_due),
        amount_paid_kes=float(paid),
        days_late=int(late),
    )
    message.due_date.FromNanoseconds(due_ns)
    message.recorded_at.FromNanoseconds(recorded_ns)
    return wrap(
        message,
        producer=CORE_BANKING,
        subject=member_key(tenant, str(member)),  # the feature store's table key
        event_id=repayment_event_id(namespace, str(rid)),
        occurred_at=_moment(recorded_ns),
    )


_REPAYMENT_FIELDS = (
    "repayment_id",
    "member_id",
    "loan_id",
    "amount_due_kes",
    "amount_paid_kes",
    "days_late",
)


def repayment_envelopes(
    repayments: pd.DataFrame, namespace: uuid.UUID, tenant: str = DEV_TENANT
) -> Iterator[EventEnvelope]:
    """One RepaymentRecorded envelope per row of contract repayments with a `repayment_id`
    (as `scenario.repayment_history` gives them), in the rows' order, for `tenant`'s members."""
    rows = zip(*(repayments[c].astype(object).tolist() for c in _REPAYMENT_FIELDS), strict=True)
    times = zip(
        _nanoseconds(repayments["due_date"]).tolist(),
        _nanoseconds(repayments["recorded_at"]).tolist(),
        strict=True,
    )
    for row, (due, recorded) in zip(rows, times, strict=True):
        yield _repayment_envelope(row, due, recorded, namespace, tenant)


def _transaction_envelope(
    row: tuple[Any, ...], at_ns: int, namespace: uuid.UUID, tenant: str
) -> EventEnvelope:
    tx_id, member, kind, amount, balance = row
    message = mobile_money_pb2.MobileMoneyTransaction(
        tenant_id=tenant,
        transaction_id=str(tx_id),
        member_id=str(member),
        kind=mobile_money_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{str(kind).upper()}"),
        amount_kes=float(amount),
        balance_kes=float(balance),
        provider=PROVIDER,
    )
    message.occurred_at.FromNanoseconds(at_ns)
    return wrap(
        message,
        producer=MOBILE_MONEY,
        subject=member_key(tenant, str(member)),  # the feature store's table key
        event_id=transaction_event_id(namespace, str(tx_id)),
        occurred_at=_moment(at_ns),
    )


# ------------------------------------------------------------------------ a whole book, replayed

#: (time in ns, stream rank, topic, build): a stream's events before they are built.
_Pending = tuple[int, int, str, Callable[[], EventEnvelope]]


def book_events(book: LoanBook, tenant: str = DEV_TENANT) -> Iterator[tuple[str, EventEnvelope]]:
    """Every application, repayment and wallet transaction of `book` as (topic, envelope), in
    time order (applications first at equal times, then repayments, then transactions).

    The three streams are merged lazily (a heap over three sorted streams, built `EVENT_CHUNK`
    rows at a time), so a large book is never materialised as envelopes. Applications keep the
    book's ids (a run's scenario gives them run-scoped ones instead). Every event is `tenant`'s,
    the SACCO whose book it is.
    """
    namespace = book_namespace(book)
    streams = [
        _application_stream(book, namespace, tenant),
        _repayment_stream(book.repayments, namespace, tenant),
        _transaction_stream(book.mobile_money, namespace, tenant),
    ]
    for _at, _rank, topic, build in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield topic, build()


def _sorted_chunks(table: pd.DataFrame, time_column: str) -> Iterator[pd.DataFrame]:
    if table.empty:
        return
    order = np.argsort(_nanoseconds(table[time_column]), kind="stable")
    for start in range(0, len(order), EVENT_CHUNK):
        yield table.iloc[order[start : start + EVENT_CHUNK]]


def _bind(build: Callable[..., EventEnvelope], *args: Any) -> Callable[[], EventEnvelope]:
    return lambda: build(*args)


def _application_stream(book: LoanBook, namespace: uuid.UUID, tenant: str) -> Iterator[_Pending]:
    national, protected = national_ids(book), demographics(book)
    for chunk in _sorted_chunks(book.applications, "applied_at"):
        ids = chunk["application_id"].astype(str).tolist()
        requests = application_requests(chunk, ids, national, protected)
        for request, at in zip(requests, _nanoseconds(chunk["applied_at"]).tolist(), strict=True):
            yield (
                at,
                0,
                topics.LOAN_APPLICATIONS,
                _bind(application_envelope, request, namespace, tenant),
            )


def _repayment_stream(
    repayments: pd.DataFrame, namespace: uuid.UUID, tenant: str
) -> Iterator[_Pending]:
    for chunk in _sorted_chunks(repayments, "recorded_at"):
        dues = _nanoseconds(chunk["due_date"]).tolist()
        ids = [
            repayment_id(str(loan), _moment(due))
            for loan, due in zip(chunk["loan_id"].tolist(), dues, strict=True)
        ]
        columns = [chunk[c].astype(object).tolist() for c in _REPAYMENT_FIELDS[1:]]
        rows = zip(ids, *columns, strict=True)
        times = zip(dues, _nanoseconds(chunk["recorded_at"]).tolist(), strict=True)
        for row, (due, at) in zip(rows, times, strict=True):
            yield (
                at,
                1,
                topics.REPAYMENTS,
                _bind(_repayment_envelope, row, due, at, namespace, tenant),
            )


def _transaction_stream(
    mobile_money: pd.DataFrame, namespace: uuid.UUID, tenant: str
) -> Iterator[_Pending]:
    columns = ["transaction_id", "member_id", "kind", "amount_kes", "balance_kes"]
    for chunk in _sorted_chunks(mobile_money, "occurred_at"):
        rows = zip(*(chunk[c].astype(object).tolist() for c in columns), strict=True)
        for row, at in zip(rows, _nanoseconds(chunk["occurred_at"]).tolist(), strict=True):
            yield (
                at,
                2,
                topics.MOBILE_MONEY_TRANSACTIONS,
                _bind(_transaction_envelope, row, at, namespace, tenant),
            )
