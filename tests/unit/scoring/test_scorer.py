"""Invalid applications and unknown members become rejections, never errors."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.common.errors import InvalidEvent
from services.common.protos.alama.events.v1.applications_pb2 import (
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.scoring.applications import RejectionCode, validate
from services.scoring.consumer import DecisionPipeline
from services.scoring.ledger import MemoryLedger
from services.scoring.online_features import OnlineBatch
from services.scoring.scorer import Scorer
from services.scoring.settings import ScoringSettings


def application(**overrides: object) -> LoanApplicationSubmitted:
    fields: dict[str, object] = {
        "application_id": "A1",
        "tenant_id": "sacco-a",
        "member_id": "M1",
        "product": LoanProduct.LOAN_PRODUCT_EMERGENCY,
        "amount_kes": 5000.0,
        "term_months": 6,
    }
    return LoanApplicationSubmitted(**(fields | overrides))  # type: ignore[arg-type]


class UnknownMembers:
    """A feature source that knows nobody, and records what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        self.asked.extend(a.member_id for a in applications)
        return OnlineBatch.unknown(len(applications))


class NoModel:
    """The model is never touched when nothing is scoreable."""

    @property
    def bundle(self) -> object:
        raise AssertionError("the model must not be used")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"amount_kes": 0.0}, "amount_kes must be positive"),
        ({"amount_kes": -10.0}, "amount_kes must be positive"),
        ({"amount_kes": float("nan")}, "amount_kes must be positive"),
        ({"term_months": 0}, "term_months must be positive"),
        ({"application_id": ""}, "application_id is missing"),
        ({"member_id": " "}, "member_id is missing"),
        ({"product": LoanProduct.LOAN_PRODUCT_UNSPECIFIED}, "product is missing"),
        # a member is always one tenant's: its features are read under the tenant's key
        ({"tenant_id": ""}, "tenant_id is missing"),
        ({"tenant_id": "sacco a"}, "tenant_id is missing or malformed"),
        ({"member_id": "sacco-b/M1"}, "member_id must not contain '/'"),
    ],
)
def test_invalid_applications_are_rejected_with_the_reason(
    overrides: dict[str, object], problem: str
) -> None:
    rejection = validate(application(**overrides))
    assert rejection is not None
    assert rejection.code is RejectionCode.INVALID_APPLICATION
    assert problem in rejection.message
    assert validate(application()) is None


async def test_scorer_returns_rejections_in_request_order() -> None:
    features = UnknownMembers()
    scorer = Scorer(features, NoModel(), bundle_dir=".", ledger=MemoryLedger(), threads=1)  # type: ignore[arg-type]
    try:
        outcomes = await scorer.score(
            [application(application_id="A1", amount_kes=-1), application(application_id="A2")],
            path="grpc",
        )
    finally:
        scorer.close()
    assert [o.application.application_id for o in outcomes] == ["A1", "A2"]
    assert [o.rejection.code for o in outcomes if o.rejection] == [
        RejectionCode.INVALID_APPLICATION,
        RejectionCode.UNKNOWN_MEMBER,
    ]
    assert all(o.decision is None for o in outcomes)
    assert features.asked == ["M1"]  # the invalid one never reached the feature store


async def test_kafka_handler_dead_letters_an_invalid_application() -> None:
    from services.common.envelope import Event, wrap

    pipeline = DecisionPipeline(ScoringSettings(), scorer=None, publisher=None)  # type: ignore[arg-type]
    bad = application(term_months=0)
    event = Event(envelope=wrap(bad, producer="test"), payload=bad)
    with pytest.raises(InvalidEvent) as raised:
        await pipeline.handle(event, record=None)  # type: ignore[arg-type]
    assert raised.value.reason == "invalid_application"
    assert pipeline.pending == []
    good = application()
    await pipeline.handle(Event(envelope=wrap(good, producer="test"), payload=good), None)  # type: ignore[arg-type]
    assert len(pipeline.pending) == 1
