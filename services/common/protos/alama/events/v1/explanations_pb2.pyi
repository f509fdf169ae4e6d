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

class Explainer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPLAINER_UNSPECIFIED: _ClassVar[Explainer]
    EXPLAINER_TREE_SHAP: _ClassVar[Explainer]
    EXPLAINER_LSTM_ATTENTION: _ClassVar[Explainer]
    EXPLAINER_INTEGRATED_GRADIENTS: _ClassVar[Explainer]
    EXPLAINER_LINEAR_TERMS: _ClassVar[Explainer]
EXPLAINER_UNSPECIFIED: Explainer
EXPLAINER_TREE_SHAP: Explainer
EXPLAINER_LSTM_ATTENTION: Explainer
EXPLAINER_INTEGRATED_GRADIENTS: Explainer
EXPLAINER_LINEAR_TERMS: Explainer

class FeatureContribution(_message.Message):
    __slots__ = ("feature", "value", "contribution", "explainer")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    EXPLAINER_FIELD_NUMBER: _ClassVar[int]
    feature: str
    value: float
    contribution: float
    explainer: Explainer
    def __init__(self, feature: _Optional[str] = ..., value: _Optional[float] = ..., contribution: _Optional[float] = ..., explainer: _Optional[_Union[Explainer, str]] = ...) -> None: ...

class CreditExplanation(_message.Message):
    __slots__ = ("decision_id", "application_id", "model_version", "contributions", "reasons", "repayment_attention", "explained_at", "mobile_money_attention", "tenant_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    REPAYMENT_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    EXPLAINED_AT_FIELD_NUMBER: _ClassVar[int]
    MOBILE_MONEY_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    application_id: str
    model_version: str
    contributions: _containers.RepeatedCompositeFieldContainer[FeatureContribution]
    reasons: _containers.RepeatedCompositeFieldContainer[_decisions_pb2.ReasonCode]
    repayment_attention: _containers.RepeatedScalarFieldContainer[float]
    explained_at: _timestamp_pb2.Timestamp
    mobile_money_attention: _containers.RepeatedScalarFieldContainer[float]
    tenant_id: str
    def __init__(self, decision_id: _Optional[str] = ..., application_id: _Optional[str] = ..., model_version: _Optional[str] = ..., contributions: _Optional[_Iterable[_Union[FeatureContribution, _Mapping]]] = ..., reasons: _Optional[_Iterable[_Union[_decisions_pb2.ReasonCode, _Mapping]]] = ..., repayment_attention: _Optional[_Iterable[float]] = ..., explained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mobile_money_attention: _Optional[_Iterable[float]] = ..., tenant_id: _Optional[str] = ...) -> None: ...
