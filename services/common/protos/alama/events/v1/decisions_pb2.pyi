import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionBand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_BAND_UNSPECIFIED: _ClassVar[DecisionBand]
    DECISION_BAND_APPROVE: _ClassVar[DecisionBand]
    DECISION_BAND_REVIEW: _ClassVar[DecisionBand]
    DECISION_BAND_DECLINE: _ClassVar[DecisionBand]
DECISION_BAND_UNSPECIFIED: DecisionBand
DECISION_BAND_APPROVE: DecisionBand
DECISION_BAND_REVIEW: DecisionBand
DECISION_BAND_DECLINE: DecisionBand

class ReasonCode(_message.Message):
    __slots__ = ("code", "description", "contribution")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    contribution: float
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ..., contribution: _Optional[float] = ...) -> None: ...

class SequenceInput(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class CreditDecision(_message.Message):
    __slots__ = ("decision_id", "application_id", "member_id", "model_version", "probability_of_default", "score", "band", "reasons", "decided_at", "features", "gbm_probability", "lstm_probability", "repayment_attention", "mobile_money_attention", "tenant_id", "contributions", "sequences", "applied_at")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class SequencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SequenceInput
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SequenceInput, _Mapping]] = ...) -> None: ...
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_OF_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    GBM_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    LSTM_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    REPAYMENT_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    MOBILE_MONEY_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    application_id: str
    member_id: str
    model_version: str
    probability_of_default: float
    score: int
    band: DecisionBand
    reasons: _containers.RepeatedCompositeFieldContainer[ReasonCode]
    decided_at: _timestamp_pb2.Timestamp
    features: _containers.ScalarMap[str, float]
    gbm_probability: float
    lstm_probability: float
    repayment_attention: _containers.RepeatedScalarFieldContainer[float]
    mobile_money_attention: _containers.RepeatedScalarFieldContainer[float]
    tenant_id: str
    contributions: _containers.RepeatedScalarFieldContainer[float]
    sequences: _containers.MessageMap[str, SequenceInput]
    applied_at: _timestamp_pb2.Timestamp
    def __init__(self, decision_id: _Optional[str] = ..., application_id: _Optional[str] = ..., member_id: _Optional[str] = ..., model_version: _Optional[str] = ..., probability_of_default: _Optional[float] = ..., score: _Optional[int] = ..., band: _Optional[_Union[DecisionBand, str]] = ..., reasons: _Optional[_Iterable[_Union[ReasonCode, _Mapping]]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., features: _Optional[_Mapping[str, float]] = ..., gbm_probability: _Optional[float] = ..., lstm_probability: _Optional[float] = ..., repayment_attention: _Optional[_Iterable[float]] = ..., mobile_money_attention: _Optional[_Iterable[float]] = ..., tenant_id: _Optional[str] = ..., contributions: _Optional[_Iterable[float]] = ..., sequences: _Optional[_Mapping[str, SequenceInput]] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
