"""Matured outcomes both models scored, fetched from the outcomes service for the promotion gate.

The outcomes service pairs each matured loan's outcome with the champion's decision and the
challenger's shadow decision on the same application and serves them at
`GET {outcomes_url}/shadow/pairs.json?challenger=<bundle_version>`:
`{"rows": [{"defaulted", "champion_pd", "challenger_pd", "champion_band", "challenger_band",
"gender", "age_band"}, ...]}`. The gate then compares the two AUCs on exactly those loans
(`training.gate.MATURED_OUTCOMES`). A service that cannot be reached, or answers something else,
is an error: a promotion asked to weigh live outcomes must not go ahead without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from training.gate import EvaluationSet

PATH = "/shadow/pairs.json"
Band = Literal["approve", "review", "decline"]


class OutcomesUnavailable(RuntimeError):
    """The outcomes service could not be reached or gave no usable answer; the message says why."""


class ShadowPair(BaseModel):
    model_config = ConfigDict(extra="ignore")

    defaulted: bool
    champion_pd: float
    challenger_pd: float
    champion_band: Band
    challenger_band: Band
    gender: str = "unknown"
    age_band: str = "unknown"


class ShadowPairs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rows: list[ShadowPair]


def fetch_shadow_pairs(
    outcomes_url: str,
    challenger_bundle: str,
    *,
    timeout_s: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> list[ShadowPair]:
    """The matured loans both the champion and this challenger scored."""
    url = outcomes_url.rstrip("/") + PATH
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            response = client.get(url, params={"challenger": challenger_bundle})
    except httpx.HTTPError as exc:
        raise OutcomesUnavailable(
            f"the outcomes service at {url} cannot be reached: {exc}"
        ) from exc
    if response.status_code != 200:
        raise OutcomesUnavailable(
            f"the outcomes service answered {response.status_code} for {response.url}:"
            f" {response.text[:200]}"
        )
    try:
        return ShadowPairs.model_validate_json(response.content).rows
    except ValidationError as exc:
        raise OutcomesUnavailable(
            f"the outcomes service's answer at {response.url} is not the shadow pairs contract:"
            f" {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
        ) from exc


def matured_outcomes_set(pairs: list[ShadowPair]) -> EvaluationSet | None:
    """The gate's MATURED_OUTCOMES set (None when no loan has matured yet)."""
    if not pairs:
        return None
    groups: Mapping[str, np.ndarray] = {
        "gender": np.array([p.gender for p in pairs]),
        "age_band": np.array([p.age_band for p in pairs]),
    }
    return EvaluationSet(
        y_default=np.array([int(p.defaulted) for p in pairs]),
        champion_pd=np.array([p.champion_pd for p in pairs]),
        challenger_pd=np.array([p.challenger_pd for p in pairs]),
        challenger_approved=np.array([p.challenger_band == "approve" for p in pairs]),
        groups=groups,
    )
