"""Matured outcomes both models scored, fetched from the outcomes service for the promotion gate.

The outcomes service pairs each matured loan's outcome with the champion's decision and the
challenger's shadow decision on the same application and serves them at
`GET {outcomes_url}/shadow/pairs.json?challenger=<bundle_version>`:
`{"rows": [{"defaulted", "champion_pd", "challenger_pd", "champion_band", "challenger_band",
"gender", "age_band"}, ...]}`. The gate then compares the two AUCs on exactly those loans
(`training.gate.MATURED_OUTCOMES`). A service that cannot be reached, or answers something else,
is an error: a promotion asked to weigh live outcomes must not go ahead without them.

Too few matured loans is neither a pass nor a refusal but "not yet" (`NotEnoughOutcomes`): on the
loop's 83 matured loans (13 defaults) two models whose PDs correlate at 0.94 measured AUCs 0.08
apart, a paired 95 % interval 0.14 wide, against the gate's 0.005 tolerance. A check that noisy
decides by chance, so the gate waits for `MIN_MATURED_LOANS` loans with `MIN_MATURED_DEFAULTS`
defaults (a lender's model-risk policy sets them: `promote --min-matured-loans/-defaults`), and the
challenger keeps running in shadow meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from training.gate import EvaluationSet

PATH = "/shadow/pairs.json"
#: the least matured evidence the gate judges a challenger on (see the module docstring)
MIN_MATURED_LOANS = 300
MIN_MATURED_DEFAULTS = 30
Band = Literal["approve", "review", "decline"]


class OutcomesUnavailable(RuntimeError):
    """The outcomes service could not be reached or gave no usable answer; the message says why."""


class NotEnoughOutcomes(RuntimeError):
    """Too few matured loans (or defaults among them) to compare the two models yet: nothing
    moves, the challenger stays in shadow; the message says how many there are and are needed."""


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


def enough_matured(
    pairs: list[ShadowPair],
    *,
    min_loans: int = MIN_MATURED_LOANS,
    min_defaults: int = MIN_MATURED_DEFAULTS,
) -> list[ShadowPair]:
    """The pairs, when there are enough to judge on; else `NotEnoughOutcomes` saying why."""
    if min_loans < 0 or min_defaults < 0:
        raise ValueError("the minimum matured loans and defaults cannot be negative")
    defaults = sum(p.defaulted for p in pairs)
    repaid = len(pairs) - defaults
    if len(pairs) < min_loans or defaults < min_defaults or (pairs and repaid == 0):
        raise NotEnoughOutcomes(
            f"not yet: {len(pairs)} matured loans both models scored ({defaults} defaulted,"
            f" {repaid} repaid); the gate judges on at least {min_loans} with {min_defaults}"
            " defaults and some repaid. Nothing moved; the challenger stays in shadow"
        )
    return pairs
