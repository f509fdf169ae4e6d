"""One contract for a mobile-money transaction's amounts: what the gateway's webhook accepts is
exactly what the feature store can use, so nothing the gateway took is dead-lettered later."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.envelope import decode, encode, wrap
from services.common.errors import InvalidEvent
from services.common.mobile_money import TRANSACTION_AMOUNT_KES, WALLET_BALANCE_KES
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    TRANSACTION_KIND_INFLOW,
    MobileMoneyTransaction,
)
from services.feature_store.events import wallet_transaction
from services.gateway.schemas import Transaction

EDGES = [-1e12, -1.0, -0.01, -0.0, 0.0, 0.01, 1e9, 1e9 + 1, 1e12, 1e12 + 1, math.inf, math.nan]


def gateway_accepts(amount: float, balance: float) -> bool:
    body: dict[str, Any] = {
        "transaction_id": "QK00000001",
        "member_id": "M-1",
        "kind": "inflow",
        "amount_kes": amount,
        "balance_kes": balance,
        "occurred_at": "2026-01-05T08:30:00+03:00",
    }
    try:
        Transaction.model_validate(body)
    except ValidationError:
        return False
    return True


def feature_store_accepts(amount: float, balance: float) -> bool:
    payload = MobileMoneyTransaction(
        tenant_id="sacco-a",
        transaction_id="QK00000001",
        member_id="M-1",
        kind=TRANSACTION_KIND_INFLOW,
        amount_kes=amount,
        balance_kes=balance,
    )
    try:
        wallet_transaction(decode(encode(wrap(payload, producer="test")), MobileMoneyTransaction))
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("balance", EDGES)
def test_the_gateway_and_the_feature_store_agree_on_balances(balance: float) -> None:
    assert gateway_accepts(1.0, balance) == feature_store_accepts(1.0, balance)


@pytest.mark.parametrize("amount", EDGES)
def test_the_gateway_and_the_feature_store_agree_on_amounts(amount: float) -> None:
    assert gateway_accepts(amount, 1.0) == feature_store_accepts(amount, 1.0)


def test_a_negative_balance_is_refused_by_both() -> None:
    assert not gateway_accepts(1.0, -1.0)
    assert not feature_store_accepts(1.0, -1.0)
    assert gateway_accepts(1.0, 0.0) and feature_store_accepts(1.0, 0.0)


def test_dead_letter_reasons_name_the_defect() -> None:
    assert WALLET_BALANCE_KES.violation(-1.0) == "negative_amount"
    assert WALLET_BALANCE_KES.violation(math.nan) == "invalid_amount"
    assert WALLET_BALANCE_KES.violation(WALLET_BALANCE_KES.maximum * 2) == "amount_out_of_range"
    assert TRANSACTION_AMOUNT_KES.violation(TRANSACTION_AMOUNT_KES.maximum) is None
