"""Any decision by application id, its member notice (page and PDF) and lodging an appeal."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.common.notices import NO_CHANGE, NotADecline, Notice, notice_of, notice_pdf
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.console.people import APPEAL_LODGERS, Role
from services.console.review import ReviewRefused
from services.console.store import CLOSED, Session
from services.console.web import back, checked, console_of, page, session_of

router = APIRouter()


@router.get("/decisions", response_class=HTMLResponse)
async def find_decision(request: Request, application_id: str = "") -> Response:
    """An application's latest decision: its queue item, or the decision alone (where an
    officer can lodge the member's appeal)."""
    session = await session_of(request)
    console = console_of(request)
    tenant = session.account.tenant_id
    decision_id = await console.store.find_decision(tenant, application_id.strip())
    if decision_id is None:
        raise ReviewRefused(f"No decision for application {application_id!r}.", status=404)
    if await console.store.item(tenant, decision_id) is not None:
        return RedirectResponse(f"/items/{quote(decision_id)}", status_code=303)
    decision = await console.store.decision(tenant, decision_id)
    return page(
        request,
        "decision.html",
        session,
        decision=decision,
        may_appeal=Role(session.account.role) in APPEAL_LODGERS,
    )


async def _notice(request: Request, session: Session, decision_id: str) -> Notice:
    console = console_of(request)
    tenant = session.account.tenant_id
    decision = await console.store.decision(tenant, decision_id)
    if decision is None:
        raise ReviewRefused("There is no decision with that id.", status=404)
    item = await console.store.item(tenant, decision_id)
    review = (
        ReviewOutcome(final_band=item.final_band)  # type: ignore[arg-type]
        if item is not None and item.state == CLOSED and item.final_band
        else None
    )
    try:
        notice = notice_of(decision, review)
    except NotADecline as exc:
        raise ReviewRefused(str(exc), status=404) from exc
    if review is None and console.explanations is not None:  # the model's own decline
        changes = await console.explanations.outcome_changes(decision_id, tenant)
        notice = replace(notice, changes=changes)
    return notice


@router.get("/decisions/{decision_id}/notice", response_class=HTMLResponse)
async def notice_page(request: Request, decision_id: str) -> HTMLResponse:
    """The member's notice, printable (the browser's print, or the PDF beside it)."""
    session = await session_of(request)
    notice = await _notice(request, session, decision_id)
    return page(request, "notice.html", session, notice=notice, no_change=NO_CHANGE)


@router.get("/decisions/{decision_id}/notice.pdf")
async def notice_document(request: Request, decision_id: str) -> Response:
    session = await session_of(request)
    notice = await _notice(request, session, decision_id)
    return Response(
        notice_pdf(notice, session.account.tenant_id),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="notice-{notice.application_id}.pdf"'},
    )


@router.post("/decisions/{decision_id}/appeals")
async def lodge_appeal(
    request: Request,
    decision_id: str,
    csrf_token: str | None = Form(None),
    grounds: str = Form("", max_length=4000),
) -> Response:
    session = await checked(request, csrf_token)
    await console_of(request).desk.lodge_appeal(session.account, decision_id, grounds)
    return back(decision_id, "appealed")
