"""The promotion gate's client of the outcomes service's shadow pairs, against a local stub HTTP
server speaking the contract (`GET /shadow/pairs.json?challenger=<bundle>`): rows become the gate's
matured-outcomes set, and a service that is down or answers off contract is an error, never an
empty set (a promotion asked to weigh live outcomes must not quietly go ahead without them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.training.conftest import Stub, shadow_pairs
from training.shadow_pairs import (
    OutcomesUnavailable,
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
