"""The JSON the gateway's contract asks for: application bodies and signed webhook deliveries.

Webhook history is split into lanes by member (a member's transactions stay in one lane, in time
order) and each lane into deliveries of at most `batch_size` transactions, built lazily so a large
book is never held as JSON at once. A delivery is signed when it is sent, over its exact bytes.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from services.common.signatures import (
    SIGNATURE_HEADER,
    TENANT_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature,
)
from simulator.events import PROVIDER
from simulator.scenario import ApplicationRequest

MAX_WEBHOOK_BATCH = 500
API_KEY_HEADER = "X-API-Key"
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with whole seconds (the gateway's event time needs no more)."""
    return moment.astimezone(UTC).strftime(_ISO_FORMAT)


#: Left out of the body when the loan book has no value: the gateway's schema makes them optional
#: (an absent channel is recorded as partner_api, the gateway's documented default).
OPTIONAL_APPLICATION_KEYS = ("channel", "declared_monthly_income_kes", "national_id")


def application_body(application: ApplicationRequest) -> dict[str, Any]:
    """`POST /v1/applications` body; empty optional fields are left out rather than sent null."""
    body: dict[str, Any] = {
        "application_id": application.application_id,
        "member_id": application.member_id,
        "sacco_id": application.sacco_id,
        "product": application.product,
        "amount_kes": application.amount_kes,
        "term_months": application.term_months,
        "applied_at": iso_utc(application.applied_at),
        "channel": application.channel,
        "declared_monthly_income_kes": application.declared_monthly_income_kes,
        "national_id": application.national_id,
    }
    if application.attributes:
        body["attributes"] = dict(application.attributes)
    return {k: v for k, v in body.items() if v is not None or k not in OPTIONAL_APPLICATION_KEYS}


def encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class WebhookDelivery:
    """One `POST /v1/webhooks/mobile-money` body, unsigned until it is sent."""

    lane: int
    body: bytes
    transactions: int

    def headers(self, secret: str, timestamp: int, tenant: str | None = None) -> dict[str, str]:
        """Signed with `tenant`'s own secret; without a tenant, for the gateway's own one."""
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_signature(secret, timestamp, self.body),
        }
        if tenant is not None:
            headers[TENANT_HEADER] = tenant
        return headers


def lane_of(member_id: str, lanes: int) -> int:
    """A stable lane per member (crc32, not hash(), which changes between processes)."""
    return zlib.crc32(member_id.encode()) % lanes


def transaction_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Webhook transaction objects; the contract has no counterparty, so that optional key is
    left out."""
    occurred = rows["occurred_at"].dt.strftime(_ISO_FORMAT).tolist()
    return [
        {
            "transaction_id": str(tx_id),
            "member_id": str(member),
            "kind": str(kind),
            "amount_kes": float(amount),
            "balance_kes": float(balance),
            "occurred_at": at,
            "provider": PROVIDER,
        }
        for tx_id, member, kind, amount, balance, at in zip(
            rows["transaction_id"].tolist(),
            rows["member_id"].astype(str).tolist(),
            rows["kind"].astype(str).tolist(),
            rows["amount_kes"].tolist(),
            rows["balance_kes"].tolist(),
            occurred,
            strict=True,
        )
    ]


def lane_deliveries(
    transactions: pd.DataFrame, *, batch_size: int = MAX_WEBHOOK_BATCH, lanes: int = 1
) -> list[Iterator[WebhookDelivery]]:
    """One lazy stream of deliveries per lane; `transactions` sorted by member, then time."""
    if not 1 <= batch_size <= MAX_WEBHOOK_BATCH:
        raise ValueError(f"webhook batch size must be 1..{MAX_WEBHOOK_BATCH}, not {batch_size}")
    if lanes < 1:
        raise ValueError("at least one webhook lane is needed")
    members = transactions["member_id"].astype(str)
    lane_index = members.map(lambda m: lane_of(m, lanes)).to_numpy()
    return [
        _deliveries(transactions[lane_index == lane], lane, batch_size) for lane in range(lanes)
    ]


def _deliveries(rows: pd.DataFrame, lane: int, batch_size: int) -> Iterator[WebhookDelivery]:
    for start in range(0, len(rows), batch_size):
        chunk = rows.iloc[start : start + batch_size]
        body = encode_json({"transactions": transaction_records(chunk)})
        yield WebhookDelivery(lane=lane, body=body, transactions=len(chunk))


def count_deliveries(transactions: pd.DataFrame, *, batch_size: int, lanes: int) -> int:
    """How many deliveries `lane_deliveries` will make (for progress), without building them."""
    if transactions.empty:
        return 0
    members = transactions["member_id"].astype(str)
    sizes = members.map(lambda m: lane_of(m, lanes)).value_counts()
    return int(sum(-(-int(n) // batch_size) for n in sizes))
