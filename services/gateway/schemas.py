"""Request and response models of the REST API, and their translation to and from protobuf.

Every free-text field rejects lone surrogates and control characters and every number rejects
NaN and infinity, so whatever passes validation can be serialised to protobuf and JSON: bad input
is a 422, never a 500 further down. Every string, list and map a request carries is bounded
(a test walks the request schemas), so the work one request causes is bounded too; the body
limits (shedding.py) bound the bytes before any of this is parsed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, cast

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.common.mobile_money import TRANSACTION_AMOUNT_KES, WALLET_BALANCE_KES
from services.common.notices import Notice
from services.common.protos.alama.events.v1.applications_pb2 import (
    Channel,
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    MobileMoneyTransaction,
    TransactionKind,
)
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.vocabulary import (
    BANDS,
    CHANNELS,
    EXPLAINERS,
    PRODUCTS,
    REVIEW_KINDS,
    TRANSACTION_KINDS,
)
from services.gateway.security import normalise_phone
from services.gateway.settings import MAX_CALL_APPLICATIONS, MAX_WEBHOOK_TRANSACTIONS

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_AMOUNT_KES = 10_000_000


def _clean_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _event_time(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST - timedelta(days=1) if value.year < 2000 else LATEST
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return utc


def _phone(value: str) -> str:
    normalise_phone(value)  # raises ValueError with the reason
    return value


def _attribute_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
#: A column of the lender's own table, as a tabular bundle names it.
AttributeName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_clean_text)]
#: Its value: a number, a category, or null / empty for unknown.
AttributeValue = (
    Annotated[str, Field(max_length=1024), AfterValidator(_attribute_text)] | float | int | None
)
MAX_ATTRIBUTES = 500
Text = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_clean_text)]
EventTime = Annotated[AwareDatetime, AfterValidator(_event_time)]


class Model(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)


class Product(StrEnum):
    DEVELOPMENT = "development"
    EMERGENCY = "emergency"
    SCHOOL_FEES = "school_fees"
    BUSINESS = "business"
    ASSET = "asset"

    def to_proto(self) -> LoanProduct:
        return cast(LoanProduct, PRODUCTS.value(self.value))


class ApplicationChannel(StrEnum):
    BRANCH = "branch"
    MOBILE_APP = "mobile_app"
    USSD = "ussd"
    PARTNER_API = "partner_api"

    def to_proto(self) -> Channel:
        return cast(Channel, CHANNELS.value(self.value))


class Band(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"
    UNSPECIFIED = "unspecified"

    @classmethod
    def from_proto(cls, band: int) -> Band:
        return cls(BANDS.name_or(band, "unspecified"))


class Kind(StrEnum):
    INFLOW = "inflow"
    OUTFLOW = "outflow"
    AIRTIME = "airtime"
    BILL_PAYMENT = "bill_payment"
    BETTING = "betting"
    OVERDRAFT_DRAW = "overdraft_draw"
    OVERDRAFT_REPAY = "overdraft_repay"

    def to_proto(self) -> TransactionKind:
        return cast(TransactionKind, TRANSACTION_KINDS.value(self.value))


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _datetime(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


class Application(Model):
    """One loan application, as a partner submits it."""

    application_id: Identifier
    member_id: Text
    sacco_id: Text | None = None
    product: Product
    amount_kes: float = Field(gt=0, le=MAX_AMOUNT_KES)
    term_months: int = Field(ge=1, le=120)
    applied_at: EventTime | None = Field(default=None, description="defaults to now")
    channel: ApplicationChannel = ApplicationChannel.PARTNER_API
    declared_monthly_income_kes: float | None = Field(default=None, ge=0, le=1e9)
    national_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        pattern=r"^\s*[A-Za-z0-9/-]+\s*$",
        description="pseudonymised before it leaves the gateway; never stored or forwarded raw",
    )
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description=(
            "The applicant's row of the lender's own table, column to value, for a model"
            " trained on that table (`python -m training tabular`): `GET /v1/model` lists the"
            " columns the serving model needs. A model on Alama's features ignores it."
        ),
    )

    def attribute_texts(self) -> dict[str, str]:
        """The attributes as the protobuf carries them: text, empty for unknown."""
        return {name: _as_text(value) for name, value in self.attributes.items()}

    def to_proto(self, national_id_hash: str = "") -> LoanApplicationSubmitted:
        message = LoanApplicationSubmitted(
            application_id=self.application_id,
            member_id=self.member_id,
            sacco_id=self.sacco_id or "",
            product=self.product.to_proto(),
            amount_kes=self.amount_kes,
            term_months=self.term_months,
            channel=self.channel.to_proto(),
            declared_monthly_income_kes=self.declared_monthly_income_kes or 0.0,
            national_id_hash=national_id_hash,
            attributes=self.attribute_texts(),
        )
        message.applied_at.CopyFrom(_timestamp(self.applied_at or datetime.now(UTC)))
        return message


def _as_text(value: str | float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return value if isinstance(value, str) else repr(value)


class BatchRequest(Model):
    # the configured max_call_applications (at most this) is checked by the route, with its own
    # message
    applications: list[Application] = Field(min_length=1, max_length=MAX_CALL_APPLICATIONS)


class Reason(Model):
    code: str
    description: str
    contribution: float


def _prose(value: str) -> str:
    """Free text a person wrote: line breaks and tabs allowed, other control characters not."""
    return _clean_text(value.replace("\n", " ").replace("\r", " ").replace("\t", " ")) and value


class AppealRequest(Model):
    """A member's appeal of a decision, lodged by the partner on the member's behalf."""

    grounds: Annotated[str, Field(min_length=20, max_length=2000), AfterValidator(_prose)] = Field(
        description="the member's grounds, in their words (20 to 2,000 characters)"
    )


class AppealAccepted(Model):
    appeal_id: str
    decision_id: str
    status: str = "lodged"


class NoticeReasonOut(Model):
    code: str
    en: str
    sw: str


class OutcomeChangeOut(Model):
    feature: str
    en: str
    sw: str


class NoticeOut(Model):
    """A member's notice of a declined application (English and Kiswahili)."""

    decision_id: str
    application_id: str
    decided_at: datetime
    reasons: list[NoticeReasonOut]
    changes: list[OutcomeChangeOut]
    how_to_appeal: dict[str, str]
    reviewed: bool

    @classmethod
    def of(cls, notice: Notice) -> NoticeOut:
        return cls(
            decision_id=notice.decision_id,
            application_id=notice.application_id,
            decided_at=notice.decided_at,
            reasons=[NoticeReasonOut(code=r.code, en=r.en, sw=r.sw) for r in notice.reasons],
            changes=[OutcomeChangeOut(feature=c.feature, en=c.en, sw=c.sw) for c in notice.changes],
            how_to_appeal=notice.how_to_appeal,
            reviewed=notice.reviewed,
        )


class Review(Model):
    """A person's review of the decision: its band is the outcome that stands."""

    review_id: str
    band: Band
    kind: str
    reason_codes: list[str]
    reviewed_at: datetime
    four_eyes: bool

    @classmethod
    def from_proto(cls, review: ReviewOutcome) -> Review:
        return cls(
            review_id=review.review_id,
            band=Band.from_proto(review.final_band),
            kind=REVIEW_KINDS.name_or(review.kind, "band"),
            reason_codes=list(review.reason_codes),
            reviewed_at=_datetime(review.reviewed_at),
            four_eyes=bool(review.second_reviewer_id),
        )


class Decision(Model):
    decision_id: str
    application_id: str
    member_id: str
    probability_of_default: float
    score: int
    band: Band
    reasons: list[Reason]
    model_version: str
    decided_at: datetime
    review: Review | None = None

    @classmethod
    def from_proto(cls, decision: CreditDecision, review: ReviewOutcome | None = None) -> Decision:
        return cls(
            decision_id=decision.decision_id,
            application_id=decision.application_id,
            member_id=decision.member_id,
            probability_of_default=decision.probability_of_default,
            score=decision.score,
            band=Band.from_proto(decision.band),
            reasons=[
                Reason(code=r.code, description=r.description, contribution=r.contribution)
                for r in decision.reasons
            ],
            model_version=decision.model_version,
            decided_at=_datetime(decision.decided_at),
            review=None if review is None else Review.from_proto(review),
        )


class ResultError(Model):
    code: str
    message: str


class BatchResult(Model):
    application_id: str
    decision: Decision | None = None
    error: ResultError | None = None


class BatchResponse(Model):
    results: list[BatchResult]


class Accepted(Model):
    application_id: str
    status: str = "accepted"
    decision_url: str


class Contribution(Model):
    feature: str
    value: float
    contribution: float
    explainer: str


class Explanation(Model):
    decision_id: str
    application_id: str
    model_version: str
    reasons: list[Reason]
    contributions: list[Contribution]
    repayment_attention: list[float]
    mobile_money_attention: list[float]
    explained_at: datetime

    @classmethod
    def from_proto(cls, explanation: CreditExplanation) -> Explanation:
        return cls(
            decision_id=explanation.decision_id,
            application_id=explanation.application_id,
            model_version=explanation.model_version,
            reasons=[
                Reason(code=r.code, description=r.description, contribution=r.contribution)
                for r in explanation.reasons
            ],
            contributions=[
                Contribution(
                    feature=c.feature,
                    value=c.value,
                    contribution=c.contribution,
                    explainer=EXPLAINERS.name_or(c.explainer, "unspecified"),
                )
                for c in explanation.contributions
            ],
            repayment_attention=list(explanation.repayment_attention),
            mobile_money_attention=list(explanation.mobile_money_attention),
            explained_at=_datetime(explanation.explained_at),
        )


class Transaction(Model):
    """One mobile-money transaction from the provider's webhook."""

    transaction_id: Identifier
    member_id: Text
    kind: Kind
    # the feature store checks the same bounds (services.common.mobile_money)
    amount_kes: float = Field(
        ge=TRANSACTION_AMOUNT_KES.minimum, le=TRANSACTION_AMOUNT_KES.maximum, allow_inf_nan=False
    )
    balance_kes: float = Field(
        ge=WALLET_BALANCE_KES.minimum,
        le=WALLET_BALANCE_KES.maximum,
        allow_inf_nan=False,
        description="wallet balance after it; never negative (an overdraft is its own kind)",
    )
    occurred_at: EventTime
    provider: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        "mpesa"
    )
    counterparty_phone: Annotated[str, Field(max_length=32), AfterValidator(_phone)] | None = Field(
        default=None, description="pseudonymised before it leaves the gateway"
    )

    def to_proto(self, counterparty_hash: str = "") -> MobileMoneyTransaction:
        message = MobileMoneyTransaction(
            transaction_id=self.transaction_id,
            member_id=self.member_id,
            kind=self.kind.to_proto(),
            amount_kes=self.amount_kes,
            balance_kes=self.balance_kes,
            provider=self.provider,
            counterparty_hash=counterparty_hash,
        )
        message.occurred_at.CopyFrom(_timestamp(self.occurred_at))
        return message


class WebhookDelivery(Model):
    # the configured max_webhook_transactions (at most this) is checked by the route
    transactions: list[Transaction] = Field(min_length=1, max_length=MAX_WEBHOOK_TRANSACTIONS)


class WebhookAccepted(Model):
    accepted: int


class ModelAttribute(Model):
    name: str
    kind: str = Field(description="numeric or categorical")
    levels: list[str] = Field(default_factory=list, description="a categorical column's values")


class ModelInputs(Model):
    """What the model now serving reads from an application."""

    model_version: str
    inputs: str = Field(
        description="feature_store: member_id's features from the feature store;"
        " attributes: the columns below, sent in each application's `attributes`"
    )
    attributes: list[ModelAttribute]
    attributes_schema: dict[str, object] = Field(
        description="JSON Schema of `attributes` for this model"
    )


class DependencyStatus(Model):
    status: str
    checks: dict[str, str]
