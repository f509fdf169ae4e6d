"""An application's audit trail: every audited event with the verifier's mark, and the chain's
status, from the audit service's contract. Every signed-in role may read it (oversight is
everyone's job); only the person's own tenant's applications are found."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.audit_trail import FetchedTrail
from services.console.web import console_of, page, session_of

router = APIRouter()


@router.get("/applications/{application_id}/trail", response_class=HTMLResponse)
async def trail_page(request: Request, application_id: str) -> HTMLResponse:
    session = await session_of(request)
    reader = console_of(request).trail
    if reader is None:
        fetched = FetchedTrail([], None, "This console is not connected to the audit service.")
    else:
        fetched = await reader.trail(application_id, session.account.tenant_id)
    status = 404 if fetched.not_found else 200
    return page(
        request,
        "trail.html",
        session,
        status=status,
        application_id=application_id,
        trail=fetched,
    )
