import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoanProduct(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAN_PRODUCT_UNSPECIFIED: _ClassVar[LoanProduct]
    LOAN_PRODUCT_DEVELOPMENT: _ClassVar[LoanProduct]
    LOAN_PRODUCT_EMERGENCY: _ClassVar[LoanProduct]
    LOAN_PRODUCT_SCHOOL_FEES: _ClassVar[LoanProduct]
    LOAN_PRODUCT_BUSINESS: _ClassVar[LoanProduct]
    LOAN_PRODUCT_ASSET: _ClassVar[LoanProduct]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_BRANCH: _ClassVar[Channel]
    CHANNEL_MOBILE_APP: _ClassVar[Channel]
    CHANNEL_USSD: _ClassVar[Channel]
    CHANNEL_PARTNER_API: _ClassVar[Channel]
LOAN_PRODUCT_UNSPECIFIED: LoanProduct
LOAN_PRODUCT_DEVELOPMENT: LoanProduct
LOAN_PRODUCT_EMERGENCY: LoanProduct
LOAN_PRODUCT_SCHOOL_FEES: LoanProduct
LOAN_PRODUCT_BUSINESS: LoanProduct
LOAN_PRODUCT_ASSET: LoanProduct
CHANNEL_UNSPECIFIED: Channel
CHANNEL_BRANCH: Channel
CHANNEL_MOBILE_APP: Channel
CHANNEL_USSD: Channel
CHANNEL_PARTNER_API: Channel

class LoanApplicationSubmitted(_message.Message):
    __slots__ = ("application_id", "member_id", "sacco_id", "product", "amount_kes", "term_months", "applied_at", "channel", "declared_monthly_income_kes", "national_id_hash", "attributes", "tenant_id", "decision_id")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SACCO_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_KES_FIELD_NUMBER: _ClassVar[int]
    TERM_MONTHS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DECLARED_MONTHLY_INCOME_KES_FIELD_NUMBER: _ClassVar[int]
    NATIONAL_ID_HASH_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    member_id: str
    sacco_id: str
    product: LoanProduct
    amount_kes: float
    term_months: int
    applied_at: _timestamp_pb2.Timestamp
    channel: Channel
    declared_monthly_income_kes: float
    national_id_hash: str
    attributes: _containers.ScalarMap[str, str]
    tenant_id: str
    decision_id: str
    def __init__(self, application_id: _Optional[str] = ..., member_id: _Optional[str] = ..., sacco_id: _Optional[str] = ..., product: _Optional[_Union[LoanProduct, str]] = ..., amount_kes: _Optional[float] = ..., term_months: _Optional[int] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[_Union[Channel, str]] = ..., declared_monthly_income_kes: _Optional[float] = ..., national_id_hash: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., tenant_id: _Optional[str] = ..., decision_id: _Optional[str] = ...) -> None: ...
