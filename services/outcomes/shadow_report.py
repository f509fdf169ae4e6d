"""The shadow comparison as people and machines read it: the Prometheus gauges, the JSON of
`/shadow.json`, the self-contained HTML page of `/shadow` (a risk officer opens it inside the
cluster, where no CDN can be reached) and the gate's rows of `/shadow/pairs.json`.

The bootstrap intervals are CPU work, so the comparison runs in a worker thread and the event
loop keeps consuming and answering scrapes meanwhile.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.outcomes.metrics import (
    SHADOW_AGREEMENT,
    SHADOW_AUC,
    SHADOW_ECE,
    SHADOW_MATURED,
    SHADOW_PAIRS,
    SHADOW_PSI,
)
from services.outcomes.shadow import Comparison, GatePairs, compare_all, gate_pairs
from services.outcomes.store import OutcomesStore

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)


async def comparisons(store: OutcomesStore, tenant: str | None = None) -> list[Comparison]:
    """Every (tenant, champion, challenger) comparison on what the store holds now."""
    pairs = await store.shadow_pairs(tenant=tenant)
    return await asyncio.to_thread(compare_all, pairs)


async def pairs_for_gate(store: OutcomesStore, challenger: str) -> GatePairs:
    return gate_pairs(await store.shadow_pairs(challenger=challenger), challenger)


def set_gauges(found: list[Comparison]) -> None:
    for c in found:
        labels = (c.tenant_id, c.champion, c.challenger)
        SHADOW_PAIRS.labels(*labels).set(c.paired)
        SHADOW_MATURED.labels(*labels).set(c.matured)
        SHADOW_AGREEMENT.labels(*labels).set(c.agreement)
        if not math.isnan(c.psi):
            SHADOW_PSI.labels(*labels).set(c.psi)
        for model, measured in (
            ("champion", c.champion_on_matured),
            ("challenger", c.challenger_on_matured),
        ):
            if measured.auc.value is not None:
                SHADOW_AUC.labels(*labels, model).set(measured.auc.value)
            if measured.ece.value is not None:
                SHADOW_ECE.labels(*labels, model).set(measured.ece.value)


async def refresh_shadow(store: OutcomesStore) -> list[Comparison]:
    found = await comparisons(store)
    set_gauges(found)
    return found


def plain(value: Any) -> Any:
    """JSON-ready: dataclasses as objects, NaN and infinities as null (JSON has neither)."""
    if hasattr(value, "__dataclass_fields__"):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_json(found: list[Comparison], generated_at: datetime) -> dict[str, Any]:
    return {"generated_at": generated_at.isoformat(), "comparisons": plain(found)}


def report_html(found: list[Comparison], generated_at: datetime) -> str:
    return _TEMPLATES.get_template("shadow.html").render(
        comparisons=found, generated_at=generated_at
    )
