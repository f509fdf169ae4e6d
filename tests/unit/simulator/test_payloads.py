"""The gateway contract's JSON: application bodies and signed webhook deliveries."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest

from services.common.features import PRODUCTS, TRANSACTION_KINDS
from services.common.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches
from services.gateway.schemas import Application
from simulator.payloads import (
    application_body,
    count_deliveries,
    lane_deliveries,
    lane_of,
)
from simulator.scenario import WIRE_CHANNELS, build_scenario
from tests.unit.simulator.gateway_double import APPLICATION_KEYS, TRANSACTION_KEYS
from training.contract import LoanBook

SECRET = "test-webhook-secret"


def test_application_body_matches_the_contract(small_book: LoanBook) -> None:
    scenario = build_scenario(small_book, 30, "shape")
    for application in scenario.applications:
        body = json.loads(json.dumps(application_body(application)))
        assert set(body) == APPLICATION_KEYS
        assert body["product"] in PRODUCTS
        assert body["channel"] in WIRE_CHANNELS
        assert isinstance(body["amount_kes"], float) and body["amount_kes"] > 0
        assert isinstance(body["term_months"], int) and body["term_months"] > 0
        assert isinstance(body["declared_monthly_income_kes"], float)
        assert body["national_id"].isdigit() and len(body["national_id"]) == 8
        assert datetime.fromisoformat(body["applied_at"]) == application.applied_at
        assert Application.model_validate(body).application_id == application.application_id


def test_empty_optional_fields_are_left_out_and_the_gateway_accepts_the_body(
    sparse_book: LoanBook,
) -> None:
    """The gateway's own request schema takes every body of a book with empty optional columns
    (and channels it cannot name); what it records for them is its documented default."""
    for application in build_scenario(sparse_book, 40, "sparse").applications:
        body = json.loads(json.dumps(application_body(application)))
        assert "national_id" not in body and "declared_monthly_income_kes" not in body
        assert ("channel" in body) == (application.channel is not None)
        parsed = Application.model_validate(body)
        assert parsed.national_id is None and parsed.declared_monthly_income_kes is None
        assert parsed.channel == (application.channel or "partner_api")


@pytest.mark.parametrize(("batch", "lanes"), [(500, 1), (500, 4), (37, 3)])
def test_deliveries_are_bounded_complete_ordered_and_signed(
    small_book: LoanBook, batch: int, lanes: int
) -> None:
    scenario = build_scenario(small_book, 40, "hooks")
    streams = lane_deliveries(scenario.transactions, batch_size=batch, lanes=lanes)
    received: list[dict[str, Any]] = []
    lane_by_member: dict[str, set[int]] = defaultdict(set)
    deliveries = 0
    for lane, stream in enumerate(streams):
        for timestamp, delivery in enumerate(stream, start=1_700_000_000):
            deliveries += 1
            headers = delivery.headers(SECRET, timestamp)
            assert headers[TIMESTAMP_HEADER] == str(timestamp)
            assert signature_matches(
                SECRET, headers[TIMESTAMP_HEADER], delivery.body, headers[SIGNATURE_HEADER]
            )
            assert not signature_matches(
                SECRET, headers[TIMESTAMP_HEADER], delivery.body + b" ", headers[SIGNATURE_HEADER]
            )
            transactions = json.loads(delivery.body)["transactions"]
            assert 1 <= len(transactions) == delivery.transactions <= batch
            for t in transactions:
                lane_by_member[t["member_id"]].add(lane)
            assert all(lane_of(t["member_id"], lanes) == lane for t in transactions)
            received.extend(transactions)

    assert deliveries == count_deliveries(scenario.transactions, batch_size=batch, lanes=lanes)
    assert sorted(t["transaction_id"] for t in received) == sorted(
        scenario.transactions["transaction_id"]
    )
    assert all(len(lanes_seen) == 1 for lanes_seen in lane_by_member.values())
    # within a member, deliveries keep time order
    by_member: dict[str, list[str]] = defaultdict(list)
    for t in received:
        by_member[str(t["member_id"])].append(str(t["occurred_at"]))
    assert all(times == sorted(times) for times in by_member.values())


def test_transaction_objects_match_the_contract(small_book: LoanBook) -> None:
    scenario = build_scenario(small_book, 10, "tx")
    delivery = next(lane_deliveries(scenario.transactions, batch_size=500, lanes=1)[0])
    for t in json.loads(delivery.body)["transactions"]:
        assert set(t) == TRANSACTION_KEYS  # counterparty_phone is optional, the contract has none
        assert t["kind"] in TRANSACTION_KINDS
        assert t["provider"] == "mpesa"
        assert isinstance(t["transaction_id"], str)
        assert t["amount_kes"] > 0 and t["balance_kes"] >= 0
        assert datetime.fromisoformat(t["occurred_at"]).tzinfo is not None


def test_a_batch_over_the_contract_limit_is_refused(small_book: LoanBook) -> None:
    scenario = build_scenario(small_book, 5, "big")
    with pytest.raises(ValueError, match=r"1\.\.500"):
        lane_deliveries(scenario.transactions, batch_size=501)
