from services.common.protos.alama.events.v1 import applications_pb2 as _applications_pb2
from services.common.protos.alama.events.v1 import decisions_pb2 as _decisions_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelInputs(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_INPUTS_UNSPECIFIED: _ClassVar[ModelInputs]
    MODEL_INPUTS_FEATURE_STORE: _ClassVar[ModelInputs]
    MODEL_INPUTS_ATTRIBUTES: _ClassVar[ModelInputs]

class AttributeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTE_KIND_UNSPECIFIED: _ClassVar[AttributeKind]
    ATTRIBUTE_KIND_NUMERIC: _ClassVar[AttributeKind]
    ATTRIBUTE_KIND_CATEGORICAL: _ClassVar[AttributeKind]

class DecisionView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_VIEW_UNSPECIFIED: _ClassVar[DecisionView]
    DECISION_VIEW_BASIC: _ClassVar[DecisionView]
    DECISION_VIEW_FULL: _ClassVar[DecisionView]

class ScoreErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_ERROR_CODE_UNSPECIFIED: _ClassVar[ScoreErrorCode]
    SCORE_ERROR_CODE_UNKNOWN_MEMBER: _ClassVar[ScoreErrorCode]
    SCORE_ERROR_CODE_INVALID_APPLICATION: _ClassVar[ScoreErrorCode]
    SCORE_ERROR_CODE_CONFLICT: _ClassVar[ScoreErrorCode]
MODEL_INPUTS_UNSPECIFIED: ModelInputs
MODEL_INPUTS_FEATURE_STORE: ModelInputs
MODEL_INPUTS_ATTRIBUTES: ModelInputs
ATTRIBUTE_KIND_UNSPECIFIED: AttributeKind
ATTRIBUTE_KIND_NUMERIC: AttributeKind
ATTRIBUTE_KIND_CATEGORICAL: AttributeKind
DECISION_VIEW_UNSPECIFIED: DecisionView
DECISION_VIEW_BASIC: DecisionView
DECISION_VIEW_FULL: DecisionView
SCORE_ERROR_CODE_UNSPECIFIED: ScoreErrorCode
SCORE_ERROR_CODE_UNKNOWN_MEMBER: ScoreErrorCode
SCORE_ERROR_CODE_INVALID_APPLICATION: ScoreErrorCode
SCORE_ERROR_CODE_CONFLICT: ScoreErrorCode

class DescribeModelRequest(_message.Message):
    __slots__ = ("with_documents",)
    WITH_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    with_documents: bool
    def __init__(self, with_documents: _Optional[bool] = ...) -> None: ...

class Attribute(_message.Message):
    __slots__ = ("name", "kind", "levels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: AttributeKind
    levels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[AttributeKind, str]] = ..., levels: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelDescription(_message.Message):
    __slots__ = ("model_version", "inputs", "attributes", "metrics", "model_card_markdown")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    inputs: ModelInputs
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    metrics: _struct_pb2.Struct
    model_card_markdown: str
    def __init__(self, model_version: _Optional[str] = ..., inputs: _Optional[_Union[ModelInputs, str]] = ..., attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., model_card_markdown: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("application", "view")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    application: _applications_pb2.LoanApplicationSubmitted
    view: DecisionView
    def __init__(self, application: _Optional[_Union[_applications_pb2.LoanApplicationSubmitted, _Mapping]] = ..., view: _Optional[_Union[DecisionView, str]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: _decisions_pb2.CreditDecision
    def __init__(self, decision: _Optional[_Union[_decisions_pb2.CreditDecision, _Mapping]] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("applications", "view")
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[_applications_pb2.LoanApplicationSubmitted]
    view: DecisionView
    def __init__(self, applications: _Optional[_Iterable[_Union[_applications_pb2.LoanApplicationSubmitted, _Mapping]]] = ..., view: _Optional[_Union[DecisionView, str]] = ...) -> None: ...

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
