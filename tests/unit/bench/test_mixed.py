"""The mixed load's webhook stream: paced, and every delivery's outcome counted."""

from __future__ import annotations

import asyncio
import time

import pandas as pd

from bench.mixed import _stream_webhooks, deliveries, run_transactions
from simulator.senders import Outcome


class FakeGateway:
    def __init__(self) -> None:
        self.calls = 0

    async def deliver(self, delivery):  # type: ignore[no-untyped-def]
        self.calls += 1
        call = self.calls
        await asyncio.sleep(0.01)
        if call % 5 == 0:
            return Outcome(accepted=False, status="429", count=0)
        return Outcome(accepted=True, status="202", count=delivery.transactions)


def _book(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "member_id": [f"M-{i % 7}" for i in range(n)],
            "kind": ["inflow"] * n,
            "amount_kes": [100.0] * n,
            "balance_kes": [1000.0] * n,
            "occurred_at": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
        }
    )


def test_transactions_get_ids_of_their_own_run_even_when_the_book_is_replayed() -> None:
    rows = run_transactions(_book(30), 100, "r1")
    assert len(rows) == 100 and rows["transaction_id"].is_unique
    assert rows["transaction_id"].str.startswith("r1-").all()


def test_every_delivery_is_counted_once_it_answers_at_the_paced_rate() -> None:
    batches = deliveries(run_transactions(_book(200), 200, "r2"), batch_size=10)  # 20 deliveries
    gateway = FakeGateway()
    began = time.perf_counter()
    counts = asyncio.run(_stream_webhooks(gateway, batches, 1000.0, asyncio.Event()))  # type: ignore[arg-type]
    assert time.perf_counter() - began >= 0.18  # 200 transactions at 1,000/s
    assert counts == {"transactions_sent": 200, "transactions_accepted": 160, "refused": 4}
