"""The promotion gate's client of the outcomes service's shadow pairs, against a local stub HTTP
server speaking the contract (`GET /shadow/pairs.json?challenger=<bundle>`): rows become the gate's
matured-outcomes set, and a service that is down or answers off contract is an error, never an
empty set (a promotion asked to weigh live outcomes must not quietly go ahead without them)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from tests.unit.training.conftest import Stub, shadow_pairs
from training.shadow_pairs import (
    MIN_MATURED_DEFAULTS,
    MIN_MATURED_LOANS,
    NotEnoughOutcomes,
    OutcomesUnavailable,
    ShadowPair,
    enough_matured,
    fetch_shadow_pairs,
    matured_outcomes_set,
)


def test_pairs_become_the_matured_outcomes_set(outcomes: tuple[str, Stub]) -> None:
    url, stub = outcomes
    stub.body = {"rows": shadow_pairs(300)}
    pairs = fetch_shadow_pairs(url + "/", "quick-20260101-abc")
    assert stub.asked == ["quick-20260101-abc"]
    matured = matured_outcomes_set(pairs)
    assert matured is not None and matured.rows == 300
    sent = stub.body["rows"]
    np.testing.assert_allclose(matured.challenger_pd, [r["challenger_pd"] for r in sent])
    np.testing.assert_array_equal(matured.y_default, [int(r["defaulted"]) for r in sent])
    assert matured.challenger_approved is not None
    np.testing.assert_array_equal(
        matured.challenger_approved, [r["challenger_band"] == "approve" for r in sent]
    )
    assert set(matured.groups) == {"gender", "age_band"}


def test_no_matured_loan_yet_is_no_set(outcomes: tuple[str, Stub]) -> None:
    url, _ = outcomes
    assert matured_outcomes_set(fetch_shadow_pairs(url, "b")) is None


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, {"detail": "warming up"}, "answered 503"),
        (200, {"pairs": []}, "not the shadow pairs contract"),
        (200, {"rows": [{"defaulted": True, "champion_pd": 0.1}]}, "not the shadow pairs"),
        (
            200,
            {"rows": [shadow_pairs(1)[0] | {"challenger_band": "maybe"}]},
            "not the shadow pairs",
        ),
    ],
)
def test_an_answer_off_contract_is_an_error(
    outcomes: tuple[str, Stub], status: int, body: Any, message: str
) -> None:
    url, stub = outcomes
    stub.status, stub.body = status, body
    with pytest.raises(OutcomesUnavailable, match=message):
        fetch_shadow_pairs(url, "b")


def test_an_unreachable_service_is_an_error() -> None:
    with pytest.raises(OutcomesUnavailable, match="cannot be reached"):
        fetch_shadow_pairs("http://127.0.0.1:1", "b", timeout_s=2)


def _pairs(loans: int, defaults: int) -> list[ShadowPair]:
    rows = shadow_pairs(loans)
    return [ShadowPair.model_validate(r | {"defaulted": i < defaults}) for i, r in enumerate(rows)]


@pytest.mark.parametrize(
    ("loans", "defaults", "why"),
    [
        (83, 13, "83 matured loans both models scored (13 defaulted, 70 repaid)"),
        (400, 29, "(29 defaulted, 371 repaid)"),
        (0, 0, "0 matured loans"),
        (400, 400, "(400 defaulted, 0 repaid)"),
    ],
)
def test_too_few_matured_loans_is_not_yet_with_the_counts(
    loans: int, defaults: int, why: str
) -> None:
    with pytest.raises(NotEnoughOutcomes, match=re.escape(why)) as raised:
        enough_matured(_pairs(loans, defaults))
    assert f"at least {MIN_MATURED_LOANS} with {MIN_MATURED_DEFAULTS} defaults" in str(raised.value)


def test_enough_matured_loans_are_judged_and_the_policy_can_lower_the_bar() -> None:
    pairs = _pairs(MIN_MATURED_LOANS, MIN_MATURED_DEFAULTS)
    assert enough_matured(pairs) is pairs
    few = _pairs(83, 13)
    assert enough_matured(few, min_loans=80, min_defaults=10) is few
    with pytest.raises(ValueError, match="negative"):
        enough_matured(few, min_loans=-1)
