"""Asynchronous applications: published to Kafka, decided by the scoring consumer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, Security, status

from services.gateway.deps import BackendsDep, SettingsDep, authenticate, serving_model
from services.gateway.events import application_envelope
from services.gateway.schemas import Accepted, Application
from services.gateway.security import SCORE_WRITE, Principal
from services.gateway.shedding import SHED_RESPONSES

router = APIRouter(prefix="/v1", tags=["applications"], responses=SHED_RESPONSES)


def decision_url(application_id: str) -> str:
    return f"/v1/applications/{application_id}/decision"


@router.post(
    "/applications",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={503: {"description": "The event log is unavailable"}},
)
async def submit_application(
    application: Application,
    request: Request,
    response: Response,
    settings: SettingsDep,
    backends: BackendsDep,
    caller: Annotated[Principal, Security(authenticate, scopes=[SCORE_WRITE])],
) -> Accepted:
    """Queue an application for scoring; answers once the broker has it, the decision later.
    A model trained on the lender's own table needs its columns in `attributes` (422 if not)."""
    await serving_model(request).check(backends.scoring, application)
    envelope = application_envelope(settings, application, caller.tenant)
    await backends.events.publish(settings.applications_topic, [envelope])
    url = decision_url(application.application_id)
    response.headers["Location"] = url
    return Accepted(application_id=application.application_id, decision_url=url)
