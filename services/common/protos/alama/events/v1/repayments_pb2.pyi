import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RepaymentRecorded(_message.Message):
    __slots__ = ("repayment_id", "member_id", "loan_id", "due_date", "amount_due_kes", "amount_paid_kes", "days_late", "recorded_at", "tenant_id")
    REPAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_KES_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_KES_FIELD_NUMBER: _ClassVar[int]
    DAYS_LATE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    repayment_id: str
    member_id: str
    loan_id: str
    due_date: _timestamp_pb2.Timestamp
    amount_due_kes: float
    amount_paid_kes: float
    days_late: int
    recorded_at: _timestamp_pb2.Timestamp
    tenant_id: str
    def __init__(self, repayment_id: _Optional[str] = ..., member_id: _Optional[str] = ..., loan_id: _Optional[str] = ..., due_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_due_kes: _Optional[float] = ..., amount_paid_kes: _Optional[float] = ..., days_late: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant_id: _Optional[str] = ...) -> None: ...
