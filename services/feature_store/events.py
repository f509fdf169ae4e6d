"""Mobile-money and repayment payloads to validated activity rows, or `InvalidEvent` and why.

A row's `member_id` is the tenant-scoped `member_key` (services.common.members): every table and
Feast row the feature store writes is one tenant's member, never a member id two SACCOs share.

The reasons raised here become dead-letter reasons, so they name the defect plainly.
"""

from __future__ import annotations

import math

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.envelope import Event
from services.common.errors import InvalidEvent
from services.common.members import member_key
from services.common.mobile_money import TRANSACTION_AMOUNT_KES, WALLET_BALANCE_KES, KesRange
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    MobileMoneyTransaction,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.vocabulary import TRANSACTION_KINDS
from services.feature_store.activity import RecordedRepayment, WalletTransaction


def wallet_transaction(event: Event[MobileMoneyTransaction]) -> WalletTransaction:
    """The transaction as a row; its time is the payload's, else the envelope's."""
    txn = event.payload
    _require(txn.transaction_id, "missing_transaction_id", "transaction_id is empty")
    _require(txn.member_id, "missing_member_id", f"transaction {txn.transaction_id}")
    _require(txn.tenant_id, "missing_tenant_id", f"transaction {txn.transaction_id}")
    kind = TRANSACTION_KINDS.name(txn.kind)
    if kind is None:
        raise InvalidEvent(
            "unknown_transaction_kind", f"transaction {txn.transaction_id}: kind {txn.kind}"
        )
    _within(txn.amount_kes, TRANSACTION_AMOUNT_KES, "amount_kes", txn.transaction_id)
    _within(txn.balance_kes, WALLET_BALANCE_KES, "balance_kes", txn.transaction_id)
    return WalletTransaction(
        transaction_id=txn.transaction_id,
        member_id=_member_key(txn.tenant_id, txn.member_id, txn.transaction_id),
        occurred_at_ns=_instant(txn, "occurred_at", event.envelope.occurred_at),
        kind=kind,
        amount_kes=float(txn.amount_kes),
        balance_kes=float(txn.balance_kes),
    )


def recorded_repayment(event: Event[RepaymentRecorded]) -> RecordedRepayment:
    """The instalment as a row: it needs a due date; its record time defaults to the envelope."""
    rp = event.payload
    _require(rp.repayment_id, "missing_repayment_id", "repayment_id is empty")
    _require(rp.member_id, "missing_member_id", f"repayment {rp.repayment_id}")
    _require(rp.tenant_id, "missing_tenant_id", f"repayment {rp.repayment_id}")
    _require(rp.loan_id, "missing_loan_id", f"repayment {rp.repayment_id}")
    if not rp.HasField("due_date"):
        raise InvalidEvent("missing_due_date", f"repayment {rp.repayment_id}")
    _non_negative(rp.amount_due_kes, "amount_due_kes", rp.repayment_id)
    _non_negative(rp.amount_paid_kes, "amount_paid_kes", rp.repayment_id)
    return RecordedRepayment(
        repayment_id=rp.repayment_id,
        member_id=_member_key(rp.tenant_id, rp.member_id, rp.repayment_id),
        loan_id=rp.loan_id,
        due_date_ns=rp.due_date.ToNanoseconds(),
        amount_due_kes=float(rp.amount_due_kes),
        amount_paid_kes=float(rp.amount_paid_kes),
        days_late=int(rp.days_late),
        recorded_at_ns=_instant(rp, "recorded_at", event.envelope.occurred_at),
    )


def _member_key(tenant_id: str, member_id: str, row_id: str) -> str:
    """Rows are keyed per tenant: the same member id at two SACCOs is two members."""
    try:
        return member_key(tenant_id, member_id)
    except ValueError as exc:
        raise InvalidEvent("invalid_member", f"{row_id}: {exc}") from exc


def _require(value: str, reason: str, detail: str) -> None:
    if not value:
        raise InvalidEvent(reason, detail)


def _within(value: float, allowed: KesRange, name: str, row_id: str) -> None:
    """The contract the gateway's webhook schema enforces too (services.common.mobile_money)."""
    reason = allowed.violation(value)
    if reason is not None:
        raise InvalidEvent(
            reason,
            f"{row_id}: {name} is {value}; allowed {allowed.minimum:g} to {allowed.maximum:g}",
        )


def _non_negative(value: float, name: str, row_id: str) -> None:
    if not math.isfinite(value):
        raise InvalidEvent("invalid_amount", f"{row_id}: {name} is {value}")
    if value < 0:
        raise InvalidEvent("negative_amount", f"{row_id}: {name} is {value}")


def _instant(
    message: MobileMoneyTransaction | RepaymentRecorded, name: str, fallback: Timestamp
) -> int:
    stamp: Timestamp = getattr(message, name) if message.HasField(name) else fallback
    return int(stamp.ToNanoseconds())
