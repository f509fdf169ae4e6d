"""gRPC wiring: `alama.scoring.v1.ScoringService` and the standard health service on grpc.aio.

Trace context arrives in the call metadata (W3C traceparent), so a gateway's trace continues
here; errors about one application go in its result, never fail the whole batch. Every decision
is on `credit.decisions` (acknowledged by the broker, its application recorded on
`loan.applications` beside it) before the caller is told it, so it is explained and audited even
if this process dies right after replying; when the broker cannot
take it the caller gets UNAVAILABLE and retries into the same decision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import grpc
from google.protobuf.struct_pb2 import Struct
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common.bundle import ServedBundle
from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.tabular_bundle import TabularBundle
from services.common.telemetry import extract_grpc_context
from services.scoring.applications import Rejection, RejectionCode
from services.scoring.batching import QueueFull, ScoreBatcher
from services.scoring.decisions import strip_inputs
from services.scoring.publisher import DecisionPublisher, NotRecorded
from services.scoring.scorer import Outcome, Scorer

log = logging.getLogger(__name__)

tracer = trace.get_tracer("alama.scoring")

SERVICE_NAME = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
ERROR_CODES = {
    RejectionCode.UNKNOWN_MEMBER: scoring_pb2.SCORE_ERROR_CODE_UNKNOWN_MEMBER,
    RejectionCode.INVALID_APPLICATION: scoring_pb2.SCORE_ERROR_CODE_INVALID_APPLICATION,
    RejectionCode.CONFLICT: scoring_pb2.SCORE_ERROR_CODE_CONFLICT,
}
STATUS_CODES = {
    RejectionCode.UNKNOWN_MEMBER: grpc.StatusCode.NOT_FOUND,
    RejectionCode.INVALID_APPLICATION: grpc.StatusCode.INVALID_ARGUMENT,
    RejectionCode.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
}


class BatchTooLarge(ValueError):
    """More applications in one ScoreBatch than the service accepts."""


def check_batch_size(applications: Sequence[LoanApplicationSubmitted], limit: int) -> None:
    if len(applications) > limit:
        raise BatchTooLarge(
            f"ScoreBatch accepts at most {limit:,} applications, got {len(applications):,};"
            " split the request"
        )


def describe_model(
    model: ServedBundle, with_documents: bool = False
) -> scoring_pb2.ModelDescription:
    """What the serving model reads from an application (the gateway validates against it),
    and when asked the bundle's training metrics and model card (the console's model page)."""
    description = scoring_pb2.ModelDescription(model_version=model.version)
    if with_documents:
        metrics, card = _bundle_documents(model.path)
        description.metrics.CopyFrom(metrics)
        description.model_card_markdown = card
    if not isinstance(model, TabularBundle):
        description.inputs = scoring_pb2.MODEL_INPUTS_FEATURE_STORE
        return description
    description.inputs = scoring_pb2.MODEL_INPUTS_ATTRIBUTES
    description.attributes.extend(
        scoring_pb2.Attribute(
            name=c.column,
            kind=scoring_pb2.ATTRIBUTE_KIND_NUMERIC
            if c.kind == "numeric"
            else scoring_pb2.ATTRIBUTE_KIND_CATEGORICAL,
            levels=list(c.levels),
        )
        for c in model.encoding.columns
    )
    return description


@lru_cache(maxsize=8)
def _bundle_documents(folder: Path) -> tuple[Struct, str]:
    """The bundle's metrics and model card, read once per bundle (a bundle folder never
    changes: a new model is a new folder): `make train`'s metrics.json and model_card.md, or a
    lender's own table's report.json and report.md; a missing or unreadable one is empty."""
    metrics = Struct()
    for name in ("metrics.json", "report.json"):
        if (folder / name).is_file():
            try:
                metrics.update(json.loads((folder / name).read_text()))
            except (OSError, ValueError) as exc:
                log.warning("the bundle's metrics are unreadable", extra={"error": str(exc)})
            break
    card = ""
    for name in ("model_card.md", "report.md"):
        if (folder / name).is_file():
            card = (folder / name).read_text(encoding="utf-8")
            break
    return metrics, card


def show(target: CreditDecision, decision: CreditDecision, view: int) -> None:
    """Put `decision` in the reply's `target` as the caller's `view` asks."""
    target.CopyFrom(decision)
    if view == scoring_pb2.DECISION_VIEW_BASIC:
        strip_inputs(target)


def _error(rejection: Rejection) -> scoring_pb2.ScoreError:
    return scoring_pb2.ScoreError(
        application_id=rejection.application_id,
        code=ERROR_CODES[rejection.code],
        message=rejection.message,
    )


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(
        self,
        scorer: Scorer,
        publisher: DecisionPublisher | None,
        *,
        max_call_applications: int = 1000,
        max_waiting: int = 1024,
    ) -> None:
        self.scorer = scorer
        self.batcher = ScoreBatcher(
            scorer, in_flight=getattr(scorer, "threads", 1), max_waiting=max_waiting
        )
        self.publisher = publisher
        self.max_call_applications = max_call_applications

    async def _record(self, outcomes: Sequence[Outcome], context: grpc.aio.ServicerContext) -> None:
        """Every decision acknowledged by the broker, or the call fails with UNAVAILABLE."""
        if self.publisher is None:
            return
        try:
            await self.publisher.publish_durably(
                (o.application, o.to_publish) for o in outcomes if o.to_publish is not None
            )
        except NotRecorded as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        self.scorer.published(outcomes)

    async def Score(
        self, request: scoring_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        with tracer.start_as_current_span(
            f"{SERVICE_NAME}/Score",
            context=extract_grpc_context(context.invocation_metadata()),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": "Score"},
        ):
            try:
                outcome = await self.batcher.score(request.application)
            except QueueFull as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            await self._record([outcome], context)
            if outcome.rejection is not None:
                rejection = outcome.rejection
                await context.abort(
                    STATUS_CODES[rejection.code], f"{rejection.code.name}: {rejection.message}"
                )
            response = scoring_pb2.ScoreResponse()
            show(response.decision, outcome.decision, request.view)  # type: ignore[arg-type]
            return response

    async def DescribeModel(
        self, request: scoring_pb2.DescribeModelRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ModelDescription:
        return describe_model(self.scorer.model, request.with_documents)

    async def ScoreBatch(
        self, request: scoring_pb2.ScoreBatchRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreBatchResponse:
        with tracer.start_as_current_span(
            f"{SERVICE_NAME}/ScoreBatch",
            context=extract_grpc_context(context.invocation_metadata()),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": "ScoreBatch"},
        ):
            try:
                check_batch_size(request.applications, self.max_call_applications)
            except BatchTooLarge as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            outcomes = await self.scorer.score(request.applications, path="grpc")
            await self._record(outcomes, context)
            response = scoring_pb2.ScoreBatchResponse()
            for o in outcomes:
                result = response.results.add()
                if o.decision is not None:
                    show(result.decision, o.decision, request.view)
                else:
                    result.error.CopyFrom(_error(o.rejection))  # type: ignore[arg-type]
            return response


async def start_server(
    scorer: Scorer,
    *,
    host: str,
    port: int,
    max_call_applications: int = 1000,
    max_waiting: int = 1024,
    publisher: DecisionPublisher | None = None,
) -> GrpcServer:
    """Start serving ScoringService and health on host:port (0 picks one)."""
    servicer = ScoringServicer(
        scorer, publisher, max_call_applications=max_call_applications, max_waiting=max_waiting
    )
    return await start_grpc_server(
        SERVICE_NAME,
        lambda server: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(servicer, server),
        host=host,
        port=port,
    )
