"""Oversight: decisions by band over time, approval and disparate impact by protected group
with bootstrap intervals, and the drift service's PSI."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.common.vocabulary import BANDS
from services.console.oversight import drift_psi, equal_opportunity, group_rates, live_performance
from services.console.web import console_of, page, session_of

router = APIRouter()


@router.get("/oversight", response_class=HTMLResponse)
async def oversight(request: Request) -> HTMLResponse:
    session = await session_of(request)
    console = console_of(request)
    tenant, days = session.account.tenant_id, console.settings.oversight_days
    by_day = await console.store.bands_by_day(tenant, days)
    series: dict[str, dict[str, int]] = {}
    for row in by_day:
        day = row["day"].strftime("%Y-%m-%d")
        series.setdefault(day, {})[BANDS.name_or(row["band"], "unknown")] = row["n"]
    fairness = {
        attribute: group_rates(await console.store.outcomes_by_group(tenant, attribute, days))
        for attribute in ("gender", "age_band")
    }
    opportunity = {
        attribute: equal_opportunity(await console.store.opportunity_by_group(tenant, attribute))
        for attribute in ("gender", "age_band")
    }
    url = console.settings.drift_metrics_url
    psi = await drift_psi(url) if url else None
    outcomes_url = console.settings.outcomes_metrics_url
    live = await live_performance(outcomes_url, tenant) if outcomes_url else None
    return page(
        request,
        "oversight.html",
        session,
        days=days,
        series=series,
        fairness=fairness,
        opportunity=opportunity,
        live=live,
        psi=psi,
        chart={
            "days": list(series),
            "bands": {
                band: [series[d].get(band, 0) for d in series]
                for band in ("approve", "review", "decline")
            },
        },
    )
