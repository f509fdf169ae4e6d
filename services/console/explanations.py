"""A decision's explanation, read from the explanation service's gRPC contract (never its
tables): the GBM's SHAP contributions for the waterfall. The page still renders when the
explanation is not there yet or the service is away; it says which."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from services.common.notices import OutcomeChange
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.explanation.v1 import explanation_pb2, explanation_pb2_grpc
from services.common.telemetry import inject_grpc_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    explanation: CreditExplanation | None
    missing: str | None = None  # why there is none, for the page


class ExplanationReader:
    def __init__(self, target: str, timeout_s: float) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = explanation_pb2_grpc.ExplanationServiceStub(self.channel)
        self.timeout_s = timeout_s

    async def explanation(self, decision_id: str, tenant: str) -> Fetched:
        request = explanation_pb2.GetExplanationRequest(decision_id=decision_id, tenant_id=tenant)
        try:
            response = await self.stub.GetExplanation(
                request, timeout=self.timeout_s, metadata=inject_grpc_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return Fetched(None, "The explanation service has not explained it yet.")
            log.warning("explanation unavailable", extra={"code": exc.code().name})
            return Fetched(None, "The explanation service is unavailable; try again shortly.")
        return Fetched(response.explanation)

    async def outcome_changes(self, decision_id: str, tenant: str) -> list[OutcomeChange]:
        """What would lift a decline, where the model can say; [] when the service is away
        (the notice then says the model cannot say)."""
        request = explanation_pb2.GetExplanationRequest(decision_id=decision_id, tenant_id=tenant)
        try:
            response = await self.stub.GetOutcomeChanges(
                request, timeout=self.timeout_s, metadata=inject_grpc_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("outcome changes unavailable", extra={"code": exc.code().name})
            return []
        return [OutcomeChange(c.feature, c.en, c.sw) for c in response.changes]

    async def close(self) -> None:
        await self.channel.close()
