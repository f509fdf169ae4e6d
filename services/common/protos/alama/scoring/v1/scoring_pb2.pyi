from services.common.protos.alama.events.v1 import applications_pb2 as _applications_pb2
from services.common.protos.alama.events.v1 import decisions_pb2 as _decisions_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_ERROR_CODE_UNSPECIFIED: _ClassVar[ScoreErrorCode]
    SCORE_ERROR_CODE_UNKNOWN_MEMBER: _ClassVar[ScoreErrorCode]
    SCORE_ERROR_CODE_INVALID_APPLICATION: _ClassVar[ScoreErrorCode]
SCORE_ERROR_CODE_UNSPECIFIED: ScoreErrorCode
SCORE_ERROR_CODE_UNKNOWN_MEMBER: ScoreErrorCode
SCORE_ERROR_CODE_INVALID_APPLICATION: ScoreErrorCode

class ScoreRequest(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: _applications_pb2.LoanApplicationSubmitted
    def __init__(self, application: _Optional[_Union[_applications_pb2.LoanApplicationSubmitted, _Mapping]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: _decisions_pb2.CreditDecision
    def __init__(self, decision: _Optional[_Union[_decisions_pb2.CreditDecision, _Mapping]] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("applications",)
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[_applications_pb2.LoanApplicationSubmitted]
    def __init__(self, applications: _Optional[_Iterable[_Union[_applications_pb2.LoanApplicationSubmitted, _Mapping]]] = ...) -> None: ...

class ScoreError(_message.Message):
    __slots__ = ("application_id", "code", "message")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    code: ScoreErrorCode
    message: str
    def __init__(self, application_id: _Optional[str] = ..., code: _Optional[_Union[ScoreErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("decision", "error")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    decision: _decisions_pb2.CreditDecision
    error: ScoreError
    def __init__(self, decision: _Optional[_Union[_decisions_pb2.CreditDecision, _Mapping]] = ..., error: _Optional[_Union[ScoreError, _Mapping]] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ...) -> None: ...
