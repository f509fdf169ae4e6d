import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegistryAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRY_ACTION_UNSPECIFIED: _ClassVar[RegistryAction]
    REGISTRY_ACTION_CHALLENGER_REGISTERED: _ClassVar[RegistryAction]
    REGISTRY_ACTION_PROMOTED: _ClassVar[RegistryAction]
    REGISTRY_ACTION_REFUSED: _ClassVar[RegistryAction]
    REGISTRY_ACTION_ROLLED_BACK: _ClassVar[RegistryAction]
REGISTRY_ACTION_UNSPECIFIED: RegistryAction
REGISTRY_ACTION_CHALLENGER_REGISTERED: RegistryAction
REGISTRY_ACTION_PROMOTED: RegistryAction
REGISTRY_ACTION_REFUSED: RegistryAction
REGISTRY_ACTION_ROLLED_BACK: RegistryAction

class GateCheck(_message.Message):
    __slots__ = ("name", "measured", "value", "ci_lower", "ci_upper", "threshold", "passed", "rows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEASURED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOWER_FIELD_NUMBER: _ClassVar[int]
    CI_UPPER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    measured: bool
    value: float
    ci_lower: float
    ci_upper: float
    threshold: str
    passed: bool
    rows: int
    def __init__(self, name: _Optional[str] = ..., measured: _Optional[bool] = ..., value: _Optional[float] = ..., ci_lower: _Optional[float] = ..., ci_upper: _Optional[float] = ..., threshold: _Optional[str] = ..., passed: _Optional[bool] = ..., rows: _Optional[int] = ...) -> None: ...

class ModelRegistryChanged(_message.Message):
    __slots__ = ("change_id", "action", "requested_by", "model_name", "model_version", "bundle_version", "replaced_model_version", "replaced_bundle_version", "reason", "checks", "changed_at", "trigger")
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLACED_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLACED_BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    action: RegistryAction
    requested_by: str
    model_name: str
    model_version: str
    bundle_version: str
    replaced_model_version: str
    replaced_bundle_version: str
    reason: str
    checks: _containers.RepeatedCompositeFieldContainer[GateCheck]
    changed_at: _timestamp_pb2.Timestamp
    trigger: str
    def __init__(self, change_id: _Optional[str] = ..., action: _Optional[_Union[RegistryAction, str]] = ..., requested_by: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., bundle_version: _Optional[str] = ..., replaced_model_version: _Optional[str] = ..., replaced_bundle_version: _Optional[str] = ..., reason: _Optional[str] = ..., checks: _Optional[_Iterable[_Union[GateCheck, _Mapping]]] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger: _Optional[str] = ...) -> None: ...

class ModelPerformanceAlert(_message.Message):
    __slots__ = ("alert_id", "model_version", "metric", "value", "reference", "threshold", "month", "loans", "raised_at")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    LOANS_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    model_version: str
    metric: str
    value: float
    reference: float
    threshold: float
    month: str
    loans: int
    raised_at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., model_version: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., reference: _Optional[float] = ..., threshold: _Optional[float] = ..., month: _Optional[str] = ..., loans: _Optional[int] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
