import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerificationScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_SCOPE_UNSPECIFIED: _ClassVar[VerificationScope]
    VERIFICATION_SCOPE_CHAIN: _ClassVar[VerificationScope]
    VERIFICATION_SCOPE_RECORDS: _ClassVar[VerificationScope]
VERIFICATION_SCOPE_UNSPECIFIED: VerificationScope
VERIFICATION_SCOPE_CHAIN: VerificationScope
VERIFICATION_SCOPE_RECORDS: VerificationScope

class GetTrailRequest(_message.Message):
    __slots__ = ("tenant_id", "application_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    application_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., application_id: _Optional[str] = ...) -> None: ...

class RecordCheck(_message.Message):
    __slots__ = ("verified", "problem", "next_problem")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    NEXT_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    problem: str
    next_problem: str
    def __init__(self, verified: _Optional[bool] = ..., problem: _Optional[str] = ..., next_problem: _Optional[str] = ...) -> None: ...

class AuditedEvent(_message.Message):
    __slots__ = ("seq", "topic", "payload_type", "event_id", "producer", "occurred_at", "recorded_at", "trace_id", "prev_hash", "row_hash", "payload_json", "check")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    ROW_HASH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    seq: int
    topic: str
    payload_type: str
    event_id: str
    producer: str
    occurred_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    trace_id: str
    prev_hash: str
    row_hash: str
    payload_json: str
    check: RecordCheck
    def __init__(self, seq: _Optional[int] = ..., topic: _Optional[str] = ..., payload_type: _Optional[str] = ..., event_id: _Optional[str] = ..., producer: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_id: _Optional[str] = ..., prev_hash: _Optional[str] = ..., row_hash: _Optional[str] = ..., payload_json: _Optional[str] = ..., check: _Optional[_Union[RecordCheck, _Mapping]] = ...) -> None: ...

class Anchor(_message.Message):
    __slots__ = ("seq", "row_hash", "anchored_at", "sealed", "matches_chain")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ROW_HASH_FIELD_NUMBER: _ClassVar[int]
    ANCHORED_AT_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    MATCHES_CHAIN_FIELD_NUMBER: _ClassVar[int]
    seq: int
    row_hash: str
    anchored_at: _timestamp_pb2.Timestamp
    sealed: bool
    matches_chain: bool
    def __init__(self, seq: _Optional[int] = ..., row_hash: _Optional[str] = ..., anchored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sealed: _Optional[bool] = ..., matches_chain: _Optional[bool] = ...) -> None: ...

class ChainStatus(_message.Message):
    __slots__ = ("scope", "ok", "first_broken_seq", "reason", "start_seq", "head_seq", "verified_through_seq", "prefix_verified_at", "latest_anchor", "anchor_note")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    PREFIX_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_ANCHOR_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_NOTE_FIELD_NUMBER: _ClassVar[int]
    scope: VerificationScope
    ok: bool
    first_broken_seq: int
    reason: str
    start_seq: int
    head_seq: int
    verified_through_seq: int
    prefix_verified_at: _timestamp_pb2.Timestamp
    latest_anchor: Anchor
    anchor_note: str
    def __init__(self, scope: _Optional[_Union[VerificationScope, str]] = ..., ok: _Optional[bool] = ..., first_broken_seq: _Optional[int] = ..., reason: _Optional[str] = ..., start_seq: _Optional[int] = ..., head_seq: _Optional[int] = ..., verified_through_seq: _Optional[int] = ..., prefix_verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest_anchor: _Optional[_Union[Anchor, _Mapping]] = ..., anchor_note: _Optional[str] = ...) -> None: ...

class GetTrailResponse(_message.Message):
    __slots__ = ("application_id", "events", "chain", "checked_at")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    events: _containers.RepeatedCompositeFieldContainer[AuditedEvent]
    chain: ChainStatus
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, application_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[AuditedEvent, _Mapping]]] = ..., chain: _Optional[_Union[ChainStatus, _Mapping]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
