from services.common.protos.alama.events.v1 import decisions_pb2 as _decisions_pb2
from services.common.protos.alama.events.v1 import explanations_pb2 as _explanations_pb2
from services.common.protos.alama.events.v1 import reviews_pb2 as _reviews_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id", "application_id", "tenant_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    application_id: str
    tenant_id: str
    def __init__(self, decision_id: _Optional[str] = ..., application_id: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision", "review")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    decision: _decisions_pb2.CreditDecision
    review: _reviews_pb2.ReviewOutcome
    def __init__(self, decision: _Optional[_Union[_decisions_pb2.CreditDecision, _Mapping]] = ..., review: _Optional[_Union[_reviews_pb2.ReviewOutcome, _Mapping]] = ...) -> None: ...

class GetExplanationRequest(_message.Message):
    __slots__ = ("decision_id", "tenant_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    tenant_id: str
    def __init__(self, decision_id: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...

class GetExplanationResponse(_message.Message):
    __slots__ = ("explanation",)
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    explanation: _explanations_pb2.CreditExplanation
    def __init__(self, explanation: _Optional[_Union[_explanations_pb2.CreditExplanation, _Mapping]] = ...) -> None: ...

class OutcomeChange(_message.Message):
    __slots__ = ("feature", "en", "sw")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    EN_FIELD_NUMBER: _ClassVar[int]
    SW_FIELD_NUMBER: _ClassVar[int]
    feature: str
    en: str
    sw: str
    def __init__(self, feature: _Optional[str] = ..., en: _Optional[str] = ..., sw: _Optional[str] = ...) -> None: ...

class GetOutcomeChangesResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[OutcomeChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[OutcomeChange, _Mapping]]] = ...) -> None: ...
