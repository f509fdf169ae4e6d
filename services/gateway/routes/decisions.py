"""Stored decisions and their explanations, served by the explanation service over gRPC."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Security, status
from fastapi.responses import Response

from services.common.notices import NotADecline, Notice, notice_of, notice_pdf
from services.gateway.deps import BackendsDep, SettingsDep, authenticate
from services.gateway.errors import NotFound, UpstreamUnavailable
from services.gateway.events import appeal_envelope
from services.gateway.schemas import (
    ID_PATTERN,
    AppealAccepted,
    AppealRequest,
    Decision,
    Explanation,
    NoticeOut,
)
from services.gateway.security import DECISIONS_READ, EXPLANATIONS_READ, SCORE_WRITE, Principal
from services.gateway.shedding import SHED_RESPONSES

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["decisions"], responses=SHED_RESPONSES)
ApplicationId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
DecisionId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
Reader = Annotated[Principal, Security(authenticate, scopes=[DECISIONS_READ])]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not known (or, for an application, not decided yet)"},
    503: {"description": "The explanation service is unavailable"},
}


@router.get(
    "/applications/{application_id}/decision",
    response_model=Decision,
    responses=ERRORS,
)
async def application_decision(
    application_id: ApplicationId, backends: BackendsDep, caller: Reader
) -> Decision:
    """The latest decision for an application the caller's tenant submitted asynchronously."""
    try:
        decision = await backends.explanations.decision(
            application_id=application_id, tenant=caller.tenant
        )
    except NotFound as exc:
        raise NotFound(
            f"no decision for application {application_id!r} yet: it is still being scored,"
            " or the application id is unknown"
        ) from exc
    return Decision.from_proto(decision)


@router.get("/decisions/{decision_id}", response_model=Decision, responses=ERRORS)
async def get_decision(decision_id: DecisionId, backends: BackendsDep, caller: Reader) -> Decision:
    """A decision of the caller's tenant (another tenant's is 404, as an unknown one), with the
    outcome of a person's review where there was one (`review.band` is the outcome that stands)."""
    try:
        decision, review = await backends.explanations.reviewed_decision(
            decision_id, tenant=caller.tenant
        )
    except NotFound as exc:
        raise NotFound(f"decision {decision_id!r} is unknown") from exc
    return Decision.from_proto(decision, review)


@router.get(
    "/decisions/{decision_id}/explanation",
    response_model=Explanation,
    responses=ERRORS,
)
async def get_explanation(
    decision_id: DecisionId,
    backends: BackendsDep,
    caller: Annotated[Principal, Security(authenticate, scopes=[EXPLANATIONS_READ])],
) -> Explanation:
    """Feature contributions (SHAP, attention), reasons and the LSTM's attention weights."""
    try:
        explanation = await backends.explanations.explanation(decision_id, tenant=caller.tenant)
    except NotFound as exc:
        raise NotFound(f"decision {decision_id!r} is unknown, so it has no explanation") from exc
    return Explanation.from_proto(explanation)


@router.post(
    "/decisions/{decision_id}/appeals",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AppealAccepted,
    responses=ERRORS,
)
async def lodge_appeal(
    decision_id: DecisionId,
    appeal: AppealRequest,
    settings: SettingsDep,
    backends: BackendsDep,
    caller: Annotated[Principal, Security(authenticate, scopes=[SCORE_WRITE])],
) -> AppealAccepted:
    """Lodge a member's appeal of a decision of the caller's tenant: it re-enters the risk
    officers' review queue, and the decision's `review` reports the outcome once settled.
    Answers once the broker has the appeal (503 if it cannot take it)."""
    try:
        decision = await backends.explanations.decision(
            decision_id=decision_id, tenant=caller.tenant
        )
    except NotFound as exc:
        raise NotFound(f"decision {decision_id!r} is unknown") from exc
    envelope = appeal_envelope(decision, appeal.grounds, lodged_by=caller.subject)
    await backends.events.publish(settings.appeals_topic, [envelope])
    return AppealAccepted(appeal_id=envelope.event_id, decision_id=decision_id)


async def _notice(backends: Any, decision_id: str, tenant: str) -> Notice:
    try:
        decision, review = await backends.explanations.reviewed_decision(decision_id, tenant=tenant)
        notice = notice_of(decision, review)
    except NotFound as exc:
        raise NotFound(f"decision {decision_id!r} is unknown") from exc
    except NotADecline as exc:
        raise NotFound(str(exc)) from exc
    if review is not None:
        return notice  # a person declined it: the model's levers are not what decided
    try:
        changes = await backends.explanations.outcome_changes(decision_id, tenant=tenant)
    except UpstreamUnavailable:
        log.warning("outcome changes unavailable", extra={"decision_id": decision_id})
        changes = []  # the notice still goes out; it says the model cannot say
    return replace(notice, changes=changes)


@router.get("/decisions/{decision_id}/notice", response_model=NoticeOut, responses=ERRORS)
async def decision_notice(
    decision_id: DecisionId, backends: BackendsDep, caller: Reader
) -> NoticeOut:
    """The member's notice of a declined application: up to four reasons in English and
    Kiswahili, what would change the outcome where the model can say, and how to appeal
    (404 for a decision that is not a decline)."""
    return NoticeOut.of(await _notice(backends, decision_id, caller.tenant))


@router.get(
    "/decisions/{decision_id}/notice.pdf",
    response_class=Response,
    responses=ERRORS | {200: {"content": {"application/pdf": {}}}},
)
async def decision_notice_pdf(
    decision_id: DecisionId, backends: BackendsDep, caller: Reader
) -> Response:
    """The same notice as a printable PDF, English then Kiswahili."""
    notice = await _notice(backends, decision_id, caller.tenant)
    return Response(
        notice_pdf(notice),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="notice-{notice.application_id}.pdf"'},
    )
