"""Synchronous scoring over gRPC: one application, or a batch in request order."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Security

from services.common.protos.alama.scoring.v1 import scoring_pb2
from services.gateway.deps import BackendsDep, SettingsDep, authenticate, serving_model
from services.gateway.errors import InvalidRequest, NotFound, UpstreamFailed
from services.gateway.events import application_message
from services.gateway.model_inputs import model_inputs
from services.gateway.schemas import (
    Application,
    BatchRequest,
    BatchResponse,
    BatchResult,
    Decision,
    ModelInputs,
    ResultError,
)
from services.gateway.security import SCORE_WRITE, Principal
from services.gateway.shedding import SHED_RESPONSES

router = APIRouter(prefix="/v1", tags=["scores"], responses=SHED_RESPONSES)
Scorer = Annotated[Principal, Security(authenticate, scopes=[SCORE_WRITE])]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "The member is unknown to scoring"},
    409: {
        "description": "The application id was already decided with other content (the same"
        " content gets the same decision back)"
    },
    503: {"description": "Scoring is unavailable or did not answer in time"},
}


def _error_code(code: int) -> str:
    return scoring_pb2.ScoreErrorCode.Name(code).removeprefix("SCORE_ERROR_CODE_").lower()


@router.post("/scores", response_model=Decision, responses=ERRORS)
async def score(
    application: Application, settings: SettingsDep, backends: BackendsDep, caller: Scorer
) -> Decision:
    """Score one application now: the same model, features and decision as the Kafka path."""
    try:
        decision = await backends.scoring.score(
            application_message(settings, application, caller.tenant)
        )
    except NotFound as exc:
        raise NotFound(
            f"member {application.member_id!r} is unknown to scoring, so the application"
            f" cannot be scored ({exc.detail})"
        ) from exc
    return Decision.from_proto(decision)


@router.post("/scores:batch", response_model=BatchResponse, responses=ERRORS)
async def score_batch(
    batch: BatchRequest, settings: SettingsDep, backends: BackendsDep, caller: Scorer
) -> BatchResponse:
    """Score up to `max_call_applications` applications; one result per application, in request
    order."""
    count = len(batch.applications)
    if count > settings.max_call_applications:
        raise InvalidRequest(
            f"a batch holds at most {settings.max_call_applications} applications, got {count};"
            " split it",
            loc=("body", "applications"),
        )
    results = await backends.scoring.score_batch(
        [application_message(settings, a, caller.tenant) for a in batch.applications]
    )
    if len(results) != count:
        raise UpstreamFailed(f"scoring returned {len(results)} results for {count} applications")
    out = []
    for application, result in zip(batch.applications, results, strict=True):
        if result.WhichOneof("outcome") == "decision":
            out.append(
                BatchResult(
                    application_id=application.application_id,
                    decision=Decision.from_proto(result.decision),
                )
            )
        else:
            out.append(
                BatchResult(
                    application_id=application.application_id,
                    error=ResultError(
                        code=_error_code(result.error.code), message=result.error.message
                    ),
                )
            )
    return BatchResponse(results=out)


@router.get(
    "/model",
    response_model=ModelInputs,
    responses={503: {"description": "Scoring is unavailable or did not answer in time"}},
)
async def serving_model_inputs(
    request: Request, backends: BackendsDep, _caller: Scorer
) -> ModelInputs:
    """The model scoring serves now and what an application must carry for it: nothing beyond
    the member for a model on Alama's features, the listed `attributes` for a model trained on
    the lender's own table."""
    return model_inputs(await serving_model(request).describe(backends.scoring, fresh=True))
