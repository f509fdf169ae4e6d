"""The review queue and its items: claim, release, approve or decline, and the second person's
confirmation or sending back (four eyes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.common.vocabulary import EXPLAINERS
from services.console.explanations import Fetched
from services.console.history import (
    mobile_money_history,
    mobile_money_summary,
    repayment_history,
    repayment_summary,
)
from services.console.people import APPEAL_LODGERS, REVIEWERS, Role
from services.console.review import ReviewRefused, proposal_of
from services.console.store import Item, Session
from services.console.web import VIEWS, back, checked, console_of, page, session_of

router = APIRouter()
MAX_WATERFALL_BARS = 12


@router.get("/queue", response_class=HTMLResponse)
async def queue(request: Request, view: str = "open", page_no: int = 1) -> HTMLResponse:
    session = await session_of(request)
    console = console_of(request)
    if view not in VIEWS:
        view = "open"
    page_no = max(page_no, 1)
    size = console.settings.page_size
    items = await console.store.queue(
        session.account.tenant_id,
        states=VIEWS[view][1],
        limit=size + 1,
        offset=(page_no - 1) * size,
    )
    stats = dict(
        await console.store.stats(
            session.account.tenant_id, timedelta(hours=console.settings.review_sla_hours)
        )
    ).get(session.account.tenant_id)
    context: dict[str, Any] = {
        "items": items[:size],
        "more": len(items) > size,
        "view": view,
        "page_no": page_no,
        "now": datetime.now(UTC),
        "sla": timedelta(hours=console.settings.review_sla_hours),
        "stats": stats,
    }
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "queue-rows":
        return page(request, "_queue_rows.html", session, **context)
    return page(request, "queue.html", session, **context)


@router.get("/items/{decision_id}", response_class=HTMLResponse)
async def item_page(request: Request, decision_id: str, done: str = "") -> HTMLResponse:
    session = await session_of(request)
    return await _item_page(request, session, decision_id, notice=done)


async def _item_page(
    request: Request,
    session: Session,
    decision_id: str,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    console = console_of(request)
    tenant = session.account.tenant_id
    item = await console.store.item(tenant, decision_id)
    if item is None:  # another tenant's id reads as unknown, never as forbidden
        raise ReviewRefused("There is no review item with that id.", status=404)
    fetched = (
        await console.explanations.explanation(decision_id, tenant)
        if console.explanations is not None
        else Fetched(None, "No explanation service is configured.")
    )
    charts = charts_of(item, fetched)
    repayments, mobile_money = charts["repayment_history"], charts["mobile_money_history"]
    return page(
        request,
        "item.html",
        session,
        status=status,
        item=item,
        now=datetime.now(UTC),
        explanation=fetched.explanation,
        explanation_missing=fetched.missing,
        charts=charts,
        repayments=repayment_summary(repayments) if repayments else None,
        mobile_money=mobile_money_summary(mobile_money) if mobile_money else None,
        actions=await console.store.actions(tenant, decision_id),
        similar=await console.store.similar(tenant, item.decision),
        may_review=Role(session.account.role) in REVIEWERS,
        may_appeal=Role(session.account.role) in APPEAL_LODGERS,
        mine=item.claimed_by == session.account.account_id,
        proposed_by_me=item.proposed_by == session.account.account_id,
        notice=notice,
        error=error,
        form=form or {},
        four_eyes_amount=console.settings.four_eyes_amount(tenant),
    )


@router.post("/items/{decision_id}/claim")
async def claim(
    request: Request, decision_id: str, csrf_token: str | None = Form(None)
) -> Response:
    session = await checked(request, csrf_token)
    await console_of(request).desk.claim(session.account, decision_id)
    return back(decision_id, "claimed")


@router.post("/items/{decision_id}/release")
async def release(
    request: Request, decision_id: str, csrf_token: str | None = Form(None)
) -> Response:
    session = await checked(request, csrf_token)
    await console_of(request).desk.release(session.account, decision_id)
    return back(decision_id, "released")


@router.post("/items/{decision_id}/decide")
async def decide(
    request: Request,
    decision_id: str,
    csrf_token: str | None = Form(None),
    outcome: str = Form(""),
    reason_codes: Annotated[list[str] | None, Form()] = None,
    justification: str = Form("", max_length=4000),
) -> Response:
    session = await checked(request, csrf_token)
    try:
        proposal = proposal_of(outcome, reason_codes or [], justification)
    except ValueError as exc:
        return await _item_page(
            request,
            session,
            decision_id,
            error=str(exc),
            status=422,
            form={
                "outcome": outcome,
                "reason_codes": reason_codes or [],
                "justification": justification,
            },
        )
    settled = await console_of(request).desk.decide(session.account, decision_id, proposal)
    return back(decision_id, "settled" if settled.closed else "proposed")


@router.post("/items/{decision_id}/confirm")
async def confirm(
    request: Request, decision_id: str, csrf_token: str | None = Form(None)
) -> Response:
    session = await checked(request, csrf_token)
    await console_of(request).desk.confirm(session.account, decision_id)
    return back(decision_id, "settled")


@router.post("/items/{decision_id}/send-back")
async def send_back(
    request: Request,
    decision_id: str,
    csrf_token: str | None = Form(None),
    why: str = Form("", max_length=2000),
) -> Response:
    session = await checked(request, csrf_token)
    await console_of(request).desk.send_back(session.account, decision_id, why)
    return back(decision_id, "sent_back")


def charts_of(item: Item, fetched: Fetched) -> dict[str, Any]:
    """The charts' data, embedded in the page as JSON (drawn by static/console.js)."""
    decision = item.decision
    charts: dict[str, Any] = {
        "repayment_attention": list(decision.repayment_attention),
        "mobile_money_attention": list(decision.mobile_money_attention),
        "repayment_history": repayment_history(decision),
        "mobile_money_history": mobile_money_history(decision),
    }
    explanation = fetched.explanation
    if explanation is not None:
        tabular = [
            c
            for c in explanation.contributions
            if EXPLAINERS.name(c.explainer) in ("tree_shap", "linear_terms")
        ]
        ranked = sorted(tabular, key=lambda c: abs(c.contribution), reverse=True)
        shown = ranked[:MAX_WATERFALL_BARS]
        rest = sum(c.contribution for c in ranked[MAX_WATERFALL_BARS:])
        bars, total = [], 0.0
        for c in shown:
            bars.append(
                {"label": c.feature, "value": c.value, "from": total, "to": total + c.contribution}
            )
            total += c.contribution
        if ranked[MAX_WATERFALL_BARS:]:
            others = len(ranked) - MAX_WATERFALL_BARS
            label = f"{others} other features"
            bars.append({"label": label, "value": None, "from": total, "to": total + rest})
        charts["waterfall"] = bars
    return charts
