import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberErasureRequested(_message.Message):
    __slots__ = ("request_id", "tenant_id", "member_id", "member_ref", "requested_by", "requested_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_REF_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    member_id: str
    member_ref: str
    requested_by: str
    requested_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., member_id: _Optional[str] = ..., member_ref: _Optional[str] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemberErasureCompleted(_message.Message):
    __slots__ = ("request_id", "tenant_id", "member_ref", "store", "records_erased", "member_held", "completed_at", "audit_seq")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_REF_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_ERASED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_HELD_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    member_ref: str
    store: str
    records_erased: int
    member_held: bool
    completed_at: _timestamp_pb2.Timestamp
    audit_seq: int
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., member_ref: _Optional[str] = ..., store: _Optional[str] = ..., records_erased: _Optional[int] = ..., member_held: _Optional[bool] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_seq: _Optional[int] = ...) -> None: ...

class MemberExportRequested(_message.Message):
    __slots__ = ("request_id", "tenant_id", "member_id", "member_ref", "requested_by", "requested_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_REF_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    member_id: str
    member_ref: str
    requested_by: str
    requested_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., member_id: _Optional[str] = ..., member_ref: _Optional[str] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemberExportPart(_message.Message):
    __slots__ = ("request_id", "tenant_id", "member_ref", "store", "member_held", "data_json", "completed_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_REF_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_HELD_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    member_ref: str
    store: str
    member_held: bool
    data_json: str
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., member_ref: _Optional[str] = ..., store: _Optional[str] = ..., member_held: _Optional[bool] = ..., data_json: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
