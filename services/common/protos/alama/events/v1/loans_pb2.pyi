import datetime

from services.common.protos.alama.events.v1 import decisions_pb2 as _decisions_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoanDisbursed(_message.Message):
    __slots__ = ("loan_id", "application_id", "member_id", "tenant_id", "principal_kes", "term_months", "disbursed_at")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_KES_FIELD_NUMBER: _ClassVar[int]
    TERM_MONTHS_FIELD_NUMBER: _ClassVar[int]
    DISBURSED_AT_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    application_id: str
    member_id: str
    tenant_id: str
    principal_kes: float
    term_months: int
    disbursed_at: _timestamp_pb2.Timestamp
    def __init__(self, loan_id: _Optional[str] = ..., application_id: _Optional[str] = ..., member_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., principal_kes: _Optional[float] = ..., term_months: _Optional[int] = ..., disbursed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoanOutcome(_message.Message):
    __slots__ = ("loan_id", "application_id", "decision_id", "model_version", "tenant_id", "defaulted", "disbursed_at", "outcome_at", "max_days_late", "instalments_observed", "probability_of_default", "band", "final_band", "applied_at")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DEFAULTED_FIELD_NUMBER: _ClassVar[int]
    DISBURSED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_DAYS_LATE_FIELD_NUMBER: _ClassVar[int]
    INSTALMENTS_OBSERVED_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_OF_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    FINAL_BAND_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    application_id: str
    decision_id: str
    model_version: str
    tenant_id: str
    defaulted: bool
    disbursed_at: _timestamp_pb2.Timestamp
    outcome_at: _timestamp_pb2.Timestamp
    max_days_late: int
    instalments_observed: int
    probability_of_default: float
    band: _decisions_pb2.DecisionBand
    final_band: _decisions_pb2.DecisionBand
    applied_at: _timestamp_pb2.Timestamp
    def __init__(self, loan_id: _Optional[str] = ..., application_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., model_version: _Optional[str] = ..., tenant_id: _Optional[str] = ..., defaulted: _Optional[bool] = ..., disbursed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_days_late: _Optional[int] = ..., instalments_observed: _Optional[int] = ..., probability_of_default: _Optional[float] = ..., band: _Optional[_Union[_decisions_pb2.DecisionBand, str]] = ..., final_band: _Optional[_Union[_decisions_pb2.DecisionBand, str]] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
