import datetime

from services.common.protos.alama.events.v1 import decisions_pb2 as _decisions_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_KIND_UNSPECIFIED: _ClassVar[ReviewKind]
    REVIEW_KIND_BAND: _ClassVar[ReviewKind]
    REVIEW_KIND_APPEAL: _ClassVar[ReviewKind]
REVIEW_KIND_UNSPECIFIED: ReviewKind
REVIEW_KIND_BAND: ReviewKind
REVIEW_KIND_APPEAL: ReviewKind

class ReviewOutcome(_message.Message):
    __slots__ = ("review_id", "decision_id", "application_id", "reviewer_id", "original_band", "final_band", "justification", "reviewed_at", "reason_codes", "second_reviewer_id", "tenant_id", "kind", "appeal_id")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_BAND_FIELD_NUMBER: _ClassVar[int]
    FINAL_BAND_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    SECOND_REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    APPEAL_ID_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    decision_id: str
    application_id: str
    reviewer_id: str
    original_band: _decisions_pb2.DecisionBand
    final_band: _decisions_pb2.DecisionBand
    justification: str
    reviewed_at: _timestamp_pb2.Timestamp
    reason_codes: _containers.RepeatedScalarFieldContainer[str]
    second_reviewer_id: str
    tenant_id: str
    kind: ReviewKind
    appeal_id: str
    def __init__(self, review_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., application_id: _Optional[str] = ..., reviewer_id: _Optional[str] = ..., original_band: _Optional[_Union[_decisions_pb2.DecisionBand, str]] = ..., final_band: _Optional[_Union[_decisions_pb2.DecisionBand, str]] = ..., justification: _Optional[str] = ..., reviewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason_codes: _Optional[_Iterable[str]] = ..., second_reviewer_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., kind: _Optional[_Union[ReviewKind, str]] = ..., appeal_id: _Optional[str] = ...) -> None: ...

class AppealLodged(_message.Message):
    __slots__ = ("appeal_id", "decision_id", "application_id", "tenant_id", "lodged_by", "channel", "grounds", "lodged_at")
    APPEAL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LODGED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    GROUNDS_FIELD_NUMBER: _ClassVar[int]
    LODGED_AT_FIELD_NUMBER: _ClassVar[int]
    appeal_id: str
    decision_id: str
    application_id: str
    tenant_id: str
    lodged_by: str
    channel: str
    grounds: str
    lodged_at: _timestamp_pb2.Timestamp
    def __init__(self, appeal_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., application_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., lodged_by: _Optional[str] = ..., channel: _Optional[str] = ..., grounds: _Optional[str] = ..., lodged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
