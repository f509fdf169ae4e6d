"""The model now deciding: version, training metrics beside the baseline, fairness, band
cut-offs and its model card (from scoring's `DescribeModel`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.model_card import (
    METRIC_NAMES,
    Described,
    band_cutoffs,
    fairness_rows,
    metric_rows,
)
from services.console.web import console_of, page, session_of

router = APIRouter()


@router.get("/model", response_class=HTMLResponse)
async def model_page(request: Request) -> HTMLResponse:
    session = await session_of(request)
    reader = console_of(request).model
    described = (
        await reader.describe()
        if reader is not None
        else Described(None, "No scoring service is configured.")
    )
    metrics = described.model.metrics if described.model is not None else {}
    return page(
        request,
        "model.html",
        session,
        model=described.model,
        missing=described.missing,
        metric_names=METRIC_NAMES,
        splits=[
            (label, metric_rows(metrics, split))
            for split, label in (("test", "Test split"), ("out_of_time", "Out of time"))
        ],
        fairness=fairness_rows(metrics),
        bands=band_cutoffs(metrics),
        profile=metrics.get("profile"),
        source=metrics.get("source"),
    )
