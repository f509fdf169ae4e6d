"""The signed mobile-money webhook: signature, freshness, replay, body, then Kafka."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from services.common.envelope import decode
from services.common.members import member_key
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    TRANSACTION_KIND_BETTING,
    TRANSACTION_KIND_INFLOW,
    MobileMoneyTransaction,
)
from services.common.signatures import webhook_signature
from services.gateway.security import pseudonymise
from tests.unit.gateway.conftest import (
    OTHER_TENANT,
    OTHER_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    Gateway,
)

PATH = "/v1/webhooks/mobile-money"
PHONE = "0712345678"


def transaction(i: int = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": f"QK{i:08d}",
        "member_id": "M-1",
        "kind": "inflow",
        "amount_kes": 1500.0,
        "balance_kes": 4200.5,
        "occurred_at": "2026-01-05T08:30:00+03:00",
        "counterparty_phone": PHONE,
    }
    return body | overrides


def signed(body: bytes, *, at: int | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    ts = int(time.time()) if at is None else at
    return {
        "X-Alama-Timestamp": str(ts),
        "X-Alama-Signature": webhook_signature(secret, ts, body),
        "content-type": "application/json",
    }


def encode(transactions: list[dict[str, Any]]) -> bytes:
    return json.dumps({"transactions": transactions}).encode()


async def test_a_signed_delivery_lands_each_transaction_hashed(gateway: Gateway) -> None:
    body = encode(
        [transaction(1), transaction(2, kind="betting", counterparty_phone="+254 712 345 678")]
    )
    response = await gateway.client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2}
    first, second = gateway.events.published
    assert {first.topic, second.topic} == {gateway.settings.transactions_topic}
    events = [
        decode(p.envelope.SerializeToString(), MobileMoneyTransaction)
        for p in gateway.events.published
    ]
    assert [e.payload.kind for e in events] == [TRANSACTION_KIND_INFLOW, TRANSACTION_KIND_BETTING]
    assert events[0].payload.transaction_id == "QK00000001"
    assert events[0].payload.member_id == "M-1" and events[0].envelope.producer == "gateway"
    # the gateway's own webhook tenant's member, keyed (and so partitioned) as the tables are
    assert events[0].payload.tenant_id == gateway.settings.webhook_tenant
    assert events[0].envelope.subject == member_key(gateway.settings.webhook_tenant, "M-1")
    assert events[0].payload.provider == "mpesa"
    assert events[0].payload.occurred_at.ToDatetime().hour == 5  # 08:30 EAT is 05:30 UTC
    # both spellings of the same number hash the same, and the number itself never leaves
    expected = pseudonymise(gateway.settings, "254712345678")
    assert [e.payload.counterparty_hash for e in events] == [expected, expected]
    for published in gateway.events.published:
        raw = published.envelope.SerializeToString()
        assert b"712345678" not in raw and b"712 345 678" not in raw


async def test_event_ids_are_deterministic_per_transaction(gateway: Gateway) -> None:
    first = encode([transaction(7)])
    assert (
        await gateway.client.post(PATH, content=first, headers=signed(first))
    ).status_code == 202
    # the provider re-sends the transaction in a new delivery (new timestamp, new signature)
    later = encode([transaction(7)])
    headers = signed(later, at=int(time.time()) + 1)
    assert (await gateway.client.post(PATH, content=later, headers=headers)).status_code == 202
    ids = [p.envelope.event_id for p in gateway.events.published]
    assert len(ids) == 2 and ids[0] == ids[1]


async def test_missing_or_bad_signatures_are_401(gateway: Gateway) -> None:
    body = encode([transaction()])
    unsigned = await gateway.client.post(
        PATH, content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert "www-authenticate" in unsigned.headers
    wrong_secret = await gateway.client.post(
        PATH, content=body, headers=signed(body, secret="not-the-secret")
    )
    assert wrong_secret.status_code == 401
    headers = signed(body)
    tampered = body.replace(b"1500.0", b"9500.0")
    assert (await gateway.client.post(PATH, content=tampered, headers=headers)).status_code == 401
    assert gateway.events.published == [] and gateway.replay.keys == {}


async def test_each_tenant_signs_its_own_members_deliveries(gateway: Gateway) -> None:
    """Two SACCOs' member M-1 are two people: a delivery is the tenant's whose secret signed
    it, and naming another tenant does not move it there."""
    body = encode([transaction(1)])
    theirs = {**signed(body, secret=OTHER_WEBHOOK_SECRET), "X-Alama-Tenant": OTHER_TENANT}
    assert (await gateway.client.post(PATH, content=body, headers=theirs)).status_code == 202
    [published] = gateway.events.published
    event = decode(published.envelope.SerializeToString(), MobileMoneyTransaction)
    assert event.payload.tenant_id == OTHER_TENANT and event.payload.member_id == "M-1"
    assert published.envelope.subject == member_key(OTHER_TENANT, "M-1")
    # the same transaction for the gateway's own tenant is another member's: another event
    again = encode([transaction(1)])
    ours = signed(again, at=int(time.time()) + 1)
    assert (await gateway.client.post(PATH, content=again, headers=ours)).status_code == 202
    first, second = gateway.events.published
    assert first.envelope.event_id != second.envelope.event_id

    refused: list[dict[str, str | bytes]] = [
        # our secret cannot file a delivery under sacco-b, nor sacco-b's under us
        {**signed(body, at=int(time.time()) + 2), "X-Alama-Tenant": OTHER_TENANT},
        signed(body, at=int(time.time()) + 3, secret=OTHER_WEBHOOK_SECRET),
        # a tenant without a secret looks exactly like a wrong signature
        {**signed(body, at=int(time.time()) + 4), "X-Alama-Tenant": "sacco-unknown"},
        {**signed(body, at=int(time.time()) + 5), "X-Alama-Tenant": "sacco-é".encode()},
    ]
    for headers in refused:
        response = await gateway.client.post(PATH, content=body, headers=headers)
        assert response.status_code == 401, response.text
    assert len(gateway.events.published) == 2


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Alama-Signature", "sha256=é".encode()),
        ("X-Alama-Signature", b"sha256=\xff\xfe" + b"0" * 60),
        ("X-Alama-Timestamp", b"17\xe900000000"),
    ],
)
async def test_a_non_ascii_signature_header_is_401_not_500(
    gateway: Gateway, header: str, value: bytes
) -> None:
    body = encode([transaction()])
    headers: dict[str, str | bytes] = {**signed(body), header: value}
    response = await gateway.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert "ASCII" in response.json()["detail"]
    assert gateway.events.published == [] and gateway.replay.keys == {}


async def test_a_stale_delivery_is_409(gateway: Gateway) -> None:
    body = encode([transaction()])
    old = int(time.time()) - gateway.settings.webhook_tolerance_seconds - 60
    response = await gateway.client.post(PATH, content=body, headers=signed(body, at=old))
    assert response.status_code == 409
    assert "old" in response.json()["detail"]
    assert gateway.events.published == []


async def test_a_replayed_delivery_is_409(gateway: Gateway) -> None:
    body = encode([transaction()])
    headers = signed(body)
    assert (await gateway.client.post(PATH, content=body, headers=headers)).status_code == 202
    replay = await gateway.client.post(PATH, content=body, headers=headers)
    assert replay.status_code == 409
    assert "already accepted" in replay.json()["detail"]
    assert len(gateway.events.published) == 1
    (ttl,) = gateway.replay.keys.values()
    assert ttl == gateway.settings.webhook_tolerance_seconds


@pytest.mark.parametrize(
    ("transactions", "loc"),
    [
        ([transaction(kind="lottery")], ["body", "transactions", 0, "kind"]),
        ([transaction(amount_kes=-1)], ["body", "transactions", 0, "amount_kes"]),
        # the feature store dead-letters a negative balance: the gateway refuses it up front
        ([transaction(balance_kes=-0.5)], ["body", "transactions", 0, "balance_kes"]),
        ([transaction(balance_kes=2e12)], ["body", "transactions", 0, "balance_kes"]),
        (
            [transaction(counterparty_phone="call me")],
            ["body", "transactions", 0, "counterparty_phone"],
        ),
        ([transaction(occurred_at="yesterday")], ["body", "transactions", 0, "occurred_at"]),
        ([{"member_id": "M-1"}], ["body", "transactions", 0, "transaction_id"]),
        ([], ["body", "transactions"]),
    ],
)
async def test_invalid_bodies_are_422_per_field(
    gateway: Gateway, transactions: list[dict[str, Any]], loc: list[Any]
) -> None:
    body = encode(transactions)
    response = await gateway.client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert gateway.events.published == []


async def test_malformed_json_and_too_many_transactions_are_422(gateway: Gateway) -> None:
    body = b'{"transactions": [ '
    response = await gateway.client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    limit = gateway.settings.max_webhook_transactions
    body = encode([transaction(i) for i in range(limit + 1)])
    response = await gateway.client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 422
    assert f"at most {limit} transactions" in response.json()["detail"][0]["msg"]


async def test_a_rejected_body_does_not_burn_the_replay_slot(gateway: Gateway) -> None:
    """An invalid delivery is forgotten: the identical retry gets the same 422 (not a
    misleading 409) and the corrected delivery is accepted."""
    bad = encode([transaction(kind="lottery")])
    headers = signed(bad)
    assert (await gateway.client.post(PATH, content=bad, headers=headers)).status_code == 422
    assert (await gateway.client.post(PATH, content=bad, headers=headers)).status_code == 422
    assert gateway.replay.keys == {}
    fixed = encode([transaction()])
    assert (
        await gateway.client.post(PATH, content=fixed, headers=signed(fixed))
    ).status_code == 202


async def test_a_delivery_kafka_refused_can_be_retried(gateway: Gateway) -> None:
    body = encode([transaction()])
    headers = signed(body)
    gateway.events.down = True
    assert (await gateway.client.post(PATH, content=body, headers=headers)).status_code == 503
    gateway.events.down = False
    assert (await gateway.client.post(PATH, content=body, headers=headers)).status_code == 202
    assert (await gateway.client.post(PATH, content=body, headers=headers)).status_code == 409
