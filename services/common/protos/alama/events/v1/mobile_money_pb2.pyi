import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_INFLOW: _ClassVar[TransactionKind]
    TRANSACTION_KIND_OUTFLOW: _ClassVar[TransactionKind]
    TRANSACTION_KIND_AIRTIME: _ClassVar[TransactionKind]
    TRANSACTION_KIND_BILL_PAYMENT: _ClassVar[TransactionKind]
    TRANSACTION_KIND_BETTING: _ClassVar[TransactionKind]
    TRANSACTION_KIND_OVERDRAFT_DRAW: _ClassVar[TransactionKind]
    TRANSACTION_KIND_OVERDRAFT_REPAY: _ClassVar[TransactionKind]
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_INFLOW: TransactionKind
TRANSACTION_KIND_OUTFLOW: TransactionKind
TRANSACTION_KIND_AIRTIME: TransactionKind
TRANSACTION_KIND_BILL_PAYMENT: TransactionKind
TRANSACTION_KIND_BETTING: TransactionKind
TRANSACTION_KIND_OVERDRAFT_DRAW: TransactionKind
TRANSACTION_KIND_OVERDRAFT_REPAY: TransactionKind

class MobileMoneyTransaction(_message.Message):
    __slots__ = ("transaction_id", "member_id", "kind", "amount_kes", "balance_kes", "occurred_at", "provider", "counterparty_hash", "tenant_id")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_KES_FIELD_NUMBER: _ClassVar[int]
    BALANCE_KES_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_HASH_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    member_id: str
    kind: TransactionKind
    amount_kes: float
    balance_kes: float
    occurred_at: _timestamp_pb2.Timestamp
    provider: str
    counterparty_hash: str
    tenant_id: str
    def __init__(self, transaction_id: _Optional[str] = ..., member_id: _Optional[str] = ..., kind: _Optional[_Union[TransactionKind, str]] = ..., amount_kes: _Optional[float] = ..., balance_kes: _Optional[float] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider: _Optional[str] = ..., counterparty_hash: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...
