"""The gateway's scoring client: what it asks scoring for, and how long it waits."""

from __future__ import annotations

from types import SimpleNamespace

import grpc

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.scoring.v1 import scoring_pb2
from services.gateway.clients import GrpcScoring


async def test_it_asks_for_the_basic_view_and_gives_a_batch_its_own_deadline() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never dialled: the stub is replaced
    scoring = GrpcScoring(channel, 2.0, 10.0)
    seen: dict[str, tuple[float, int]] = {}

    async def call(request: object, *, timeout: float, metadata: object) -> object:  # noqa: ASYNC109
        assert isinstance(request, scoring_pb2.ScoreRequest | scoring_pb2.ScoreBatchRequest)
        seen[type(request).__name__] = (timeout, request.view)
        if isinstance(request, scoring_pb2.ScoreBatchRequest):
            return scoring_pb2.ScoreBatchResponse()
        return scoring_pb2.ScoreResponse()

    scoring.stub = SimpleNamespace(Score=call, ScoreBatch=call)  # type: ignore[assignment]
    try:
        await scoring.score(LoanApplicationSubmitted(application_id="A-1"))
        await scoring.score_batch([LoanApplicationSubmitted(application_id="A-2")])
    finally:
        await channel.close()
    basic = scoring_pb2.DECISION_VIEW_BASIC
    assert seen == {"ScoreRequest": (2.0, basic), "ScoreBatchRequest": (10.0, basic)}
