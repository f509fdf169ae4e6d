"""The gRPC surface on a real in-process grpc.aio server, with a stand-in scorer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.scoring.applications import validate
from services.scoring.scorer import Outcome
from services.scoring.server import BatchTooLarge, check_batch_size, start_server


class ValidatingScorer:
    """Rejects invalid applications like the real scorer; decides the rest at PD 0.1."""

    def __init__(self) -> None:
        self.calls = 0

    async def score(
        self, applications: Sequence[LoanApplicationSubmitted], *, path: str
    ) -> list[Outcome]:
        self.calls += 1
        outcomes = []
        for a in applications:
            rejection = validate(a)
            decision = (
                None
                if rejection
                else CreditDecision(application_id=a.application_id, probability_of_default=0.1)
            )
            outcomes.append(Outcome(a, decision=decision, rejection=rejection))
        return outcomes


def app(i: int, amount: float = 1000.0) -> LoanApplicationSubmitted:
    return LoanApplicationSubmitted(
        application_id=f"A{i}",
        tenant_id="sacco-a",
        member_id=f"M{i}",
        product=1,
        amount_kes=amount,
        term_months=6,
    )


@pytest.fixture
async def stub() -> AsyncIterator[
    tuple[scoring_pb2_grpc.ScoringServiceStub, grpc.aio.Channel, ValidatingScorer]
]:
    scorer = ValidatingScorer()
    server = await start_server(scorer, host="127.0.0.1", port=0, max_call_applications=1000)  # type: ignore[arg-type]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield scoring_pb2_grpc.ScoringServiceStub(channel), channel, scorer
    finally:
        await channel.close()
        await server.stop(None)


def test_batch_limit() -> None:
    check_batch_size([app(i) for i in range(1000)], 1000)
    with pytest.raises(BatchTooLarge, match="at most 1,000 applications, got 1,001"):
        check_batch_size([app(i) for i in range(1001)], 1000)


async def test_score_batch_over_the_limit_is_invalid_argument(stub) -> None:  # type: ignore[no-untyped-def]
    client, _channel, scorer = stub
    request = scoring_pb2.ScoreBatchRequest(applications=[app(i) for i in range(1001)])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.ScoreBatch(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1,000" in (raised.value.details() or "")
    assert scorer.calls == 0


async def test_score_batch_reports_invalid_applications_per_result(stub) -> None:  # type: ignore[no-untyped-def]
    client, _channel, _scorer = stub
    request = scoring_pb2.ScoreBatchRequest(applications=[app(1), app(2, amount=0.0), app(3)])
    response = await client.ScoreBatch(request)
    kinds = [r.WhichOneof("outcome") for r in response.results]
    assert kinds == ["decision", "error", "decision"]
    error = response.results[1].error
    assert error.code == scoring_pb2.SCORE_ERROR_CODE_INVALID_APPLICATION
    assert error.application_id == "A2" and "amount_kes" in error.message


async def test_score_invalid_application_is_invalid_argument(stub) -> None:  # type: ignore[no-untyped-def]
    client, channel, _scorer = stub
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.Score(scoring_pb2.ScoreRequest(application=app(1, amount=-5.0)))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ok = await client.Score(scoring_pb2.ScoreRequest(application=app(1)))
    assert ok.decision.application_id == "A1"
    health = health_pb2_grpc.HealthStub(channel)
    status = await health.Check(
        health_pb2.HealthCheckRequest(service="alama.scoring.v1.ScoringService")
    )
    assert status.status == health_pb2.HealthCheckResponse.SERVING
