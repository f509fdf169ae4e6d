"""Per-member activity kept in the Faust tables: recent wallet transactions and repayments.

Each member's history is keyed by transaction id / repayment id, so a redelivered event
changes nothing, and pruned to what the feature definitions can still use (the mobile-money
history window, 24 repayment months), so the state stays small. Histories serialise to plain
JSON for the changelog topics that let a restarted worker restore them.

A history keeps each row as the plain list of its values (the order of the row's dataclass
fields), the form the changelog's JSON holds: loading a state and saving it again are then a
dict and a list over the same row lists, not a dataclass per row each way (a tenth of the
worker's time in a burst went to building and unbuilding them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import itemgetter
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
import pandas as pd

from services.common.features import (
    MOBILE_MONEY_HISTORY_DAYS,
    NS_PER_DAY,
    REPAYMENT_MONTHS,
)

NS_PER_MICROSECOND = 1_000


class Outcome(StrEnum):
    """What adding one event did to a member's history."""

    ADDED = "processed"
    DUPLICATE = "duplicate"
    STALE = "stale"  # older than anything the features at the member's as-of can use


@dataclass(frozen=True)
class WalletTransaction:
    """One mobile-money transaction, in the columns training's world table has."""

    transaction_id: str
    member_id: str
    occurred_at_ns: int
    kind: str
    amount_kes: float
    balance_kes: float

    @property
    def key(self) -> str:
        return self.transaction_id

    @property
    def at_ns(self) -> int:
        return self.occurred_at_ns


@dataclass(frozen=True)
class RecordedRepayment:
    """One instalment's outcome, in the columns training's world table has.

    The world's ``month_offset`` (months before the member's application) has no meaning in a
    stream and `repayment_features` does not read it, so it is not kept.
    """

    repayment_id: str
    member_id: str
    loan_id: str
    due_date_ns: int
    amount_due_kes: float
    amount_paid_kes: float
    days_late: int
    recorded_at_ns: int

    @property
    def key(self) -> str:
        return self.repayment_id

    @property
    def at_ns(self) -> int:
        return self.recorded_at_ns


RowT = TypeVar("RowT", WalletTransaction, RecordedRepayment)
#: a row's values in its dataclass's field order: the key first, as the JSON state holds them
RowValues = list[Any]


def _position(row_type: type, name: str) -> int:
    return [f.name for f in fields(row_type)].index(name)


@dataclass
class History(ABC, Generic[RowT]):
    """A member's rows by id, the as-of time last pushed, whether a push is owed, and the
    feature rows pushed online but not yet written to the offline store.

    The owed rows are kept as pushed, not recomputed later: by then late events or pruning could
    give another row than the one online served, and training must see what scoring saw.
    """

    member_id: str
    rows: dict[str, RowValues] = field(default_factory=dict)
    pushed_as_of_ns: int = 0
    pending: bool = False
    offline: list[dict[str, Any]] = field(default_factory=list)

    ROW: ClassVar[type]
    #: the position of the row's event time (what as-of follows) in its values
    AT: ClassVar[int]

    def add(self, row: RowT) -> Outcome:
        if row.key in self.rows:
            return Outcome.DUPLICATE
        values = _row_values(row)
        if self.pushed_as_of_ns and not self.usable_at(values, self.pushed_as_of_ns):
            return Outcome.STALE
        self.rows[row.key] = values
        self.pending = True
        return Outcome.ADDED

    @property
    def latest_ns(self) -> int:
        at = self.AT
        return max((r[at] for r in self.rows.values()), default=0)

    def next_as_of_ns(self) -> int:
        """Just after the member's latest event, and always after the last pushed as-of.

        The feature functions use only data strictly before ``as_of``, so as-of one microsecond
        after the latest event includes it. Feast's Redis store drops a write whose timestamp is
        not newer than the stored one, so a late (older) event still moves as-of forward by a
        microsecond, the smallest step a Feast timestamp keeps.
        """
        after_latest = _ceil_us(self.latest_ns) + NS_PER_MICROSECOND
        return max(after_latest, self.pushed_as_of_ns + NS_PER_MICROSECOND)

    def mark_pushed(self, as_of_ns: int) -> None:
        """Record a successful push and forget rows no later as-of can use."""
        self.pushed_as_of_ns = as_of_ns
        self.pending = False
        self.rows = {k: r for k, r in self.rows.items() if self.usable_at(r, as_of_ns)}

    @staticmethod
    @abstractmethod
    def usable_at(row: RowValues, as_of_ns: int) -> bool:
        """Whether the features at this as-of (or any later one) can still see the row."""

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "rows": list(self.rows.values()),  # rows are never changed in place, only replaced
            "pushed_as_of_ns": self.pushed_as_of_ns,
            "pending": self.pending,
            "offline": self.offline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        width = len(fields(cls.ROW))
        rows: dict[str, RowValues] = {}
        for values in data.get("rows", []):
            if len(values) != width:
                raise ValueError(f"a {cls.ROW.__name__} state row has {len(values)} values")
            rows[str(values[0])] = values
        return cls(
            member_id=str(data["member_id"]),
            rows=rows,
            pushed_as_of_ns=int(data.get("pushed_as_of_ns", 0)),
            pending=bool(data.get("pending", False)),
            offline=list(data.get("offline") or []),
        )


_OCCURRED_AT = _position(WalletTransaction, "occurred_at_ns")
_DUE_DATE = _position(RecordedRepayment, "due_date_ns")


class WalletHistory(History[WalletTransaction]):
    ROW = WalletTransaction
    AT = _OCCURRED_AT

    @staticmethod
    def usable_at(row: RowValues, as_of_ns: int) -> bool:
        return as_of_ns - row[_OCCURRED_AT] <= MOBILE_MONEY_HISTORY_DAYS * NS_PER_DAY


class RepaymentHistory(History[RecordedRepayment]):
    ROW = RecordedRepayment
    AT = _position(RecordedRepayment, "recorded_at_ns")

    @staticmethod
    def usable_at(row: RowValues, as_of_ns: int) -> bool:
        return _month_number(as_of_ns) - _month_number(row[_DUE_DATE]) <= REPAYMENT_MONTHS


def _columns(
    histories: Iterable[History[Any]], row_type: type
) -> tuple[dict[str, list[Any]], pd.Categorical]:
    """The histories' rows as columns, by field name, and each row's member as a categorical.

    One list per column (`zip(*rows)` over tens of thousands of rows took a quarter of a
    batch's time), and the member column as codes over the histories' members: the feature
    functions map categories to members once instead of hashing a member id per row.
    """
    kept = list(histories)
    rows = [r for h in kept for r in h.rows.values()]
    names = [f.name for f in fields(row_type)]
    columns = {
        name: list(map(itemgetter(i), rows)) for i, name in enumerate(names) if name != "member_id"
    }
    members = [h.member_id for h in kept]
    if len(set(members)) == len(members):
        codes = np.repeat(np.arange(len(kept), dtype=np.int32), [len(h.rows) for h in kept])
        member = pd.Categorical.from_codes(codes, categories=pd.Index(members, dtype="object"))
    else:  # one member's history twice: its rows keep the id they hold
        member = pd.Categorical([r[names.index("member_id")] for r in rows])
    return columns, member


def transactions_frame(histories: Iterable[WalletHistory]) -> pd.DataFrame:
    """The members' transactions as the world's mobile-money table (what training reads)."""
    c, member = _columns(histories, WalletTransaction)
    return pd.DataFrame(
        {
            "transaction_id": _objects(c["transaction_id"]),
            "member_id": member,
            "occurred_at": _utc(c["occurred_at_ns"]),
            "kind": pd.Categorical(c["kind"]),
            "amount_kes": np.array(c["amount_kes"], dtype=np.float64),
            "balance_kes": np.array(c["balance_kes"], dtype=np.float64),
        }
    )


def repayments_frame(histories: Iterable[RepaymentHistory]) -> pd.DataFrame:
    """The members' repayments as the world's repayments table (what training reads)."""
    c, member = _columns(histories, RecordedRepayment)
    return pd.DataFrame(
        {
            "member_id": member,
            "loan_id": _objects(c["loan_id"]),
            "due_date": _utc(c["due_date_ns"]),
            "amount_due_kes": np.array(c["amount_due_kes"], dtype=np.float64),
            "amount_paid_kes": np.array(c["amount_paid_kes"], dtype=np.float64),
            "days_late": np.array(c["days_late"], dtype=np.int64),
            "recorded_at": _utc(c["recorded_at_ns"]),
        }
    )


def _row_values(row: WalletTransaction | RecordedRepayment) -> RowValues:
    return list(row.__dict__.values())


def _objects(values: list[Any]) -> np.ndarray:
    """Text values as an object array, built directly (pandas' object Series checks each)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _utc(ns: list[int]) -> pd.Series:
    stamps = np.asarray(ns, dtype=np.int64).view("datetime64[ns]")
    return pd.Series(pd.DatetimeIndex(stamps).tz_localize("UTC"))


def _ceil_us(ns: int) -> int:
    return -(-ns // NS_PER_MICROSECOND) * NS_PER_MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _month_number(ns: int) -> int:
    """Months since January 1970 of a UTC instant (NumPy's datetime64[M] count), in plain
    Python: it runs for every kept row at every push, where a NumPy scalar cost ten times more."""
    moment = _EPOCH + timedelta(microseconds=ns // 1000)
    return (moment.year - 1970) * 12 + moment.month - 1
