"""gRPC wiring: `alama.explanation.v1.ExplanationService` and the standard health service.

Trace context arrives in the call metadata (W3C traceparent), so a gateway's trace continues
here. A decision that is stored but not explained yet is explained on demand (and stored), so a
caller never waits for the consumer to catch up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.model_registry import RegistryUnavailable
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.explanation.v1 import explanation_pb2, explanation_pb2_grpc
from services.common.telemetry import extract_grpc_context
from services.explanation.changes import OutcomeChanges
from services.explanation.explainer import ExplainerPool
from services.explanation.metrics import GRPC_REQUESTS, ON_DEMAND
from services.explanation.store import DecisionStore

tracer = trace.get_tracer("alama.explanation")

SERVICE_NAME = explanation_pb2.DESCRIPTOR.services_by_name["ExplanationService"].full_name


class Call:
    """One RPC: its status code for the metrics, and the way to end it with an error."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context
        self.code = grpc.StatusCode.OK

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code = code
        await self.context.abort(code, details)
        raise AssertionError("unreachable: abort raises")  # for type checkers


@contextmanager
def _rpc(method: str, context: grpc.aio.ServicerContext) -> Iterator[Call]:
    call = Call(context)
    with tracer.start_as_current_span(
        f"{SERVICE_NAME}/{method}",
        context=extract_grpc_context(context.invocation_metadata()),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": SERVICE_NAME, "rpc.method": method},
    ) as span:
        try:
            yield call
        except Exception:
            if call.code == grpc.StatusCode.OK:  # not an abort: a failure of ours
                call.code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", call.code.value[0])
            GRPC_REQUESTS.labels(method, call.code.name).inc()


class ExplanationServicer(explanation_pb2_grpc.ExplanationServiceServicer):
    def __init__(
        self,
        store: DecisionStore,
        explainer: ExplainerPool,
        changes: OutcomeChanges | None = None,
    ) -> None:
        self.store = store
        self.explainer = explainer
        self.changes = changes

    async def GetDecision(
        self, request: explanation_pb2.GetDecisionRequest, context: grpc.aio.ServicerContext
    ) -> explanation_pb2.GetDecisionResponse:
        with _rpc("GetDecision", context) as call:
            key = request.WhichOneof("key")
            tenant = request.tenant_id or None
            decision: CreditDecision | None = None
            if key == "decision_id" and request.decision_id:
                decision = await self.store.decision(request.decision_id, tenant)
                missing = f"no decision {request.decision_id!r}"
            elif key == "application_id" and request.application_id:
                decision = await self.store.latest_decision(request.application_id, tenant)
                missing = f"no decision for application {request.application_id!r}"
            else:
                await call.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "give a decision_id or an application_id"
                )
            if decision is None:
                await call.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"{missing} (yet: it may not have reached the explanation service)",
                )
            review = await self.store.latest_review(decision.decision_id, tenant)
            return explanation_pb2.GetDecisionResponse(decision=decision, review=review)

    async def GetExplanation(
        self, request: explanation_pb2.GetExplanationRequest, context: grpc.aio.ServicerContext
    ) -> explanation_pb2.GetExplanationResponse:
        with _rpc("GetExplanation", context) as call:
            if not request.decision_id:
                await call.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a decision_id")
            tenant = request.tenant_id or None
            explanation = await self.store.explanation(request.decision_id, tenant)
            if explanation is None:
                explanation = await self._explain_on_demand(request.decision_id, tenant, call)
            return explanation_pb2.GetExplanationResponse(explanation=explanation)

    async def GetOutcomeChanges(
        self, request: explanation_pb2.GetExplanationRequest, context: grpc.aio.ServicerContext
    ) -> explanation_pb2.GetOutcomeChangesResponse:
        with _rpc("GetOutcomeChanges", context) as call:
            if not request.decision_id:
                await call.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a decision_id")
            decision = await self.store.decision(request.decision_id, request.tenant_id or None)
            if decision is None:
                await call.abort(
                    grpc.StatusCode.NOT_FOUND, f"no decision {request.decision_id!r} (yet)"
                )
            changes = [] if self.changes is None else await self.changes.changes(decision)
            return explanation_pb2.GetOutcomeChangesResponse(
                changes=[
                    explanation_pb2.OutcomeChange(feature=c.feature, en=c.en, sw=c.sw)
                    for c in changes
                ]
            )

    async def _explain_on_demand(
        self, decision_id: str, tenant: str | None, call: Call
    ) -> CreditExplanation:
        decision = await self.store.decision(decision_id, tenant)
        if decision is None:
            await call.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no decision {decision_id!r} (yet: it may not have reached the explanation"
                " service)",
            )
        try:
            (outcome,) = await self.explainer.explain(
                [decision], explained_at=datetime.now(UTC), path="on_demand"
            )
        except RegistryUnavailable as exc:
            await call.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; retry")
        if outcome.error is not None:
            await call.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"decision {decision_id!r} cannot be explained: {outcome.error}",
            )
        assert outcome.explanation is not None
        ON_DEMAND.inc()
        return await self.store.save_explanation(outcome.explanation)


async def start_server(
    store: DecisionStore,
    explainer: ExplainerPool,
    *,
    host: str,
    port: int,
    changes: OutcomeChanges | None = None,
) -> GrpcServer:
    """Start serving ExplanationService and health on host:port (0 picks one)."""
    servicer = ExplanationServicer(store, explainer, changes)
    return await start_grpc_server(
        SERVICE_NAME,
        lambda server: explanation_pb2_grpc.add_ExplanationServiceServicer_to_server(
            servicer, server
        ),
        host=host,
        port=port,
    )
