"""Decision identity and durability: an application id decided stays decided (same content, same
decision; other content, a conflict), and a synchronous caller is told a decision only after
the broker holds it (UNAVAILABLE, and nothing told, when it does not)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import grpc
import pytest
from prometheus_client import REGISTRY

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.scoring.applications import RejectionCode, validate
from services.scoring.decisions import decision_id
from services.scoring.ledger import MemoryLedger
from services.scoring.publisher import NotRecorded
from services.scoring.scorer import Outcome, Scorer
from services.scoring.server import start_server


class DriftingScorer(Scorer):
    """The real scorer's identity rules over a model whose answer changes on every call, as a
    live member's features do between two requests."""

    def __init__(self) -> None:
        super().__init__(
            features=None,  # type: ignore[arg-type]
            model=None,  # type: ignore[arg-type]
            bundle_dir=".",
            ledger=MemoryLedger(),
            threads=1,
        )
        self.calls = 0
        self.settle_every_s = 0.01

    @property
    def model_version(self) -> str:
        return "v1"

    def _score_sync(
        self, applications: list[LoanApplicationSubmitted], model: object
    ) -> list[Outcome]:  # type: ignore[override]
        self.calls += 1
        outcomes = []
        for a in applications:
            rejection = validate(a)
            if rejection is not None:
                outcomes.append(Outcome(a, rejection=rejection))
                continue
            decision = CreditDecision(
                decision_id=decision_id(a, "v1"),
                application_id=a.application_id,
                member_id=a.member_id,
                tenant_id=a.tenant_id,
                model_version="v1",
                probability_of_default=0.01 * self.calls,
            )
            decision.decided_at.FromDatetime(datetime.now(UTC))
            outcomes.append(Outcome(a, decision=decision))
        return outcomes


def app(app_id: str, amount: float = 1000.0) -> LoanApplicationSubmitted:
    return LoanApplicationSubmitted(
        application_id=app_id,
        tenant_id="sacco-a",
        member_id="M1",
        product=1,
        amount_kes=amount,
        term_months=6,
    )


async def test_the_same_content_gets_the_same_decision_and_other_content_a_conflict() -> None:
    scorer = DriftingScorer()
    try:
        [first] = await scorer.score([app("A1")], path="grpc")
        [again] = await scorer.score([app("A1")], path="kafka")
        [changed] = await scorer.score([app("A1", amount=2000.0)], path="grpc")
        [other] = await scorer.score([app("A2")], path="grpc")
    finally:
        scorer.close()
    assert first.decision is not None and again.decision == first.decision
    assert scorer.calls == 2  # the repeat was not scored again: A1 once, A2 once
    assert changed.decision is None and changed.rejection is not None
    assert changed.rejection.code is RejectionCode.CONFLICT
    assert first.decision.decision_id in changed.rejection.message
    assert other.decision is not None and other.decision.decision_id != first.decision.decision_id


async def test_duplicates_within_one_batch_agree_on_one_decision() -> None:
    scorer = DriftingScorer()
    try:
        outcomes = await scorer.score([app("B1"), app("B1"), app("B1", amount=5.0)], path="kafka")
    finally:
        scorer.close()
    assert outcomes[0].decision is not None and outcomes[1].decision == outcomes[0].decision
    assert outcomes[2].rejection is not None
    assert outcomes[2].rejection.code is RejectionCode.CONFLICT


class RecordingPublisher:
    """Stands in for the Kafka publisher: acknowledges, or fails like an unreachable broker."""

    def __init__(self, *, fail: bool = False, delay: float = 0.0) -> None:
        self.fail = fail
        self.delay = delay
        self.acknowledged: list[str] = []
        self.applications: list[LoanApplicationSubmitted] = []

    async def publish_durably(
        self, decided: Iterable[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> None:
        batch = list(decided)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise NotRecorded("the decision could not be recorded; retry")
        self.acknowledged.extend(d.decision_id for _, d in batch)
        self.applications.extend(a for a, _ in batch)


@pytest.fixture
async def serving() -> AsyncIterator[
    tuple[scoring_pb2_grpc.ScoringServiceStub, RecordingPublisher]
]:
    publisher = RecordingPublisher(delay=0.05)
    scorer = DriftingScorer()
    server = await start_server(
        scorer,
        host="127.0.0.1",
        port=0,
        publisher=publisher,  # type: ignore[arg-type]
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield scoring_pb2_grpc.ScoringServiceStub(channel), publisher
    finally:
        await channel.close()
        await server.stop(None)
        scorer.close()


async def test_a_reply_comes_only_after_the_broker_has_the_decision(serving) -> None:  # type: ignore[no-untyped-def]
    client, publisher = serving
    reply = await client.Score(scoring_pb2.ScoreRequest(application=app("C1")))
    assert publisher.acknowledged == [reply.decision.decision_id]
    batch = await client.ScoreBatch(scoring_pb2.ScoreBatchRequest(applications=[app("C2")]))
    assert publisher.acknowledged[-1] == batch.results[0].decision.decision_id
    # each decision goes with the application it decided (recorded on loan.applications)
    assert publisher.applications == [app("C1"), app("C2")]


async def test_no_broker_means_unavailable_and_the_retry_gets_the_same_decision(serving) -> None:  # type: ignore[no-untyped-def]
    client, publisher = serving
    publisher.fail = True
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.Score(scoring_pb2.ScoreRequest(application=app("D1")))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert publisher.acknowledged == []
    publisher.fail = False
    retried = await client.Score(scoring_pb2.ScoreRequest(application=app("D1")))
    assert publisher.acknowledged == [retried.decision.decision_id]
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await client.Score(scoring_pb2.ScoreRequest(application=app("D1", amount=9.0)))
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert retried.decision.decision_id in (conflict.value.details() or "")


async def test_only_acknowledged_decisions_are_settled_and_a_late_retry_is_not_republished() -> (
    None
):
    publisher = RecordingPublisher()
    scorer = DriftingScorer()
    ledger = scorer.ledger
    assert isinstance(ledger, MemoryLedger)
    server = await start_server(scorer, host="127.0.0.1", port=0, publisher=publisher)  # type: ignore[arg-type]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    client = scoring_pb2_grpc.ScoringServiceStub(channel)
    try:
        publisher.fail = True
        with pytest.raises(grpc.aio.AioRpcError):
            await client.Score(scoring_pb2.ScoreRequest(application=app("L1")))
        publisher.fail = False
        first = await client.Score(scoring_pb2.ScoreRequest(application=app("L2")))
        await asyncio.sleep(0.05)  # settling runs beside the reply
        assert ledger.settled == ["sacco-a/L2"]  # L1's whole copy stays: nobody has it yet
        # past the retry window only the outcome is left: answered, not published again
        ledger.entries["sacco-a/L2"] = ledger.entries["sacco-a/L2"].standing()
        late = await client.Score(
            scoring_pb2.ScoreRequest(application=app("L2"), view=scoring_pb2.DECISION_VIEW_FULL)
        )
        assert late.decision.decision_id == first.decision.decision_id
        assert late.decision.probability_of_default == first.decision.probability_of_default
        assert publisher.acknowledged == [first.decision.decision_id]
        await asyncio.sleep(0.05)
        assert ledger.settled == ["sacco-a/L2"]
        # L1 was never on the broker: its retry publishes it, whole
        retried = await client.Score(scoring_pb2.ScoreRequest(application=app("L1")))
        assert publisher.acknowledged[-1] == retried.decision.decision_id
    finally:
        await channel.close()
        await server.stop(None)
        scorer.close()


class QueuingPublisher:
    """The Kafka path's side of the publisher: every decision queued is acknowledged at once."""

    def __init__(self) -> None:
        self.published: list[CreditDecision] = []

    async def publish(self, decision: CreditDecision) -> asyncio.Future[None]:
        self.published.append(decision)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_the_kafka_path_republishes_a_whole_copy_but_not_a_standing_outcome() -> None:
    from services.common.envelope import Event, wrap
    from services.scoring.consumer import DecisionPipeline
    from services.scoring.settings import ScoringSettings

    scorer, publisher = DriftingScorer(), QueuingPublisher()
    ledger = scorer.ledger
    assert isinstance(ledger, MemoryLedger)
    pipeline = DecisionPipeline(ScoringSettings(), scorer, publisher)  # type: ignore[arg-type]
    pipeline.consumer = object()  # type: ignore[assignment]  # no dead letters in this test

    async def replay(*ids: str) -> None:
        for i in ids:
            event = Event(envelope=wrap(app(i), producer="test"), payload=app(i))
            await pipeline.handle(event, record=None)  # type: ignore[arg-type]
        await pipeline.flush()
        await asyncio.sleep(0.05)  # settling runs beside the pipeline

    try:
        await replay("K1", "K2")
        first = [d.decision_id for d in publisher.published]
        assert sorted(ledger.settled) == ["sacco-a/K1", "sacco-a/K2"]
        ledger.entries["sacco-a/K2"] = ledger.entries["sacco-a/K2"].standing()
        await replay("K1", "K2")  # a replay: K1 still whole, K2 past the window
    finally:
        scorer.close()
    assert [d.decision_id for d in publisher.published] == first + first[:1]
    assert scorer.calls == 1


def decided_count() -> float:
    return REGISTRY.get_sample_value("alama_scoring_already_decided_applications_total") or 0.0


async def test_the_kafka_path_does_not_decide_an_application_recorded_as_decided() -> None:
    from services.common.envelope import Event, wrap
    from services.scoring.consumer import DecisionPipeline
    from services.scoring.settings import ScoringSettings

    scorer, publisher = DriftingScorer(), QueuingPublisher()
    pipeline = DecisionPipeline(ScoringSettings(), scorer, publisher)  # type: ignore[arg-type]
    pipeline.consumer = object()  # type: ignore[assignment]  # no dead letters in this test
    recorded, fresh = app("R1"), app("R2")
    recorded.decision_id = "decided-synchronously"
    before = decided_count()
    try:
        for application in (recorded, fresh):
            event = Event(envelope=wrap(application, producer="test"), payload=application)
            await pipeline.handle(event, record=None)  # type: ignore[arg-type]
        await pipeline.flush()
    finally:
        scorer.close()
    assert [d.application_id for d in publisher.published] == ["R2"]
    assert decided_count() == before + 1


async def test_application_ids_are_each_tenants_own() -> None:
    scorer = DriftingScorer()
    first, second = app("T1"), app("T1", amount=2500.0)
    first.tenant_id, second.tenant_id = "sacco-a", "sacco-b"
    try:
        [a] = await scorer.score([first], path="grpc")
        [b] = await scorer.score([second], path="grpc")
    finally:
        scorer.close()
    assert a.decision is not None and b.decision is not None  # no conflict across tenants
    assert a.decision.tenant_id == "sacco-a" and b.decision.tenant_id == "sacco-b"
    assert a.decision.decision_id != b.decision.decision_id


def test_the_service_keeps_its_ledger_in_its_own_namespace() -> None:
    from services.scoring.__main__ import build_ledger
    from services.scoring.settings import ScoringSettings

    one = build_ledger(ScoringSettings(ledger_namespace="sacco-deployment", ledger_days=30))
    other = build_ledger(ScoringSettings(ledger_namespace="a-test-run"))
    assert one.prefix == "alama:scoring:decided:sacco-deployment:"
    assert other.prefix != one.prefix and one.ttl == 30 * 86_400
