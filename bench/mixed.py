"""Mixed load: the synchronous API while mobile-money webhooks stream in, and the feature store's
ingestion rate from webhook to Feast.

A SACCO's gateway takes both at once: loan officers' `POST /v1/scores` and the provider's
webhooks. `mixed_load` runs the open-loop API rates while a second open loop posts webhook
deliveries at a fixed number of transactions per second, sampling the feature store group's
lag every second; when the webhooks stop it measures how long the lag takes to reach 0.
`ingestion` sends a burst of transactions through the webhook route as fast as the gateway
takes them and times the whole path until the feature store's group has consumed every one
(its features pushed to Feast's online store): transactions per second, webhook to Feast.

Transactions are the book's own, with ids made unique to the run, so the feature store does the
full work (a redelivered id would be skipped as a duplicate, which is cheaper).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from bench.load import RateResult, load_session, score_loop
from services.common.lag import GroupLagProbe
from services.common.settings import InfraSettings
from services.common.topics import MOBILE_MONEY_TRANSACTIONS
from simulator.payloads import WebhookDelivery, lane_deliveries
from simulator.senders import GatewayClient, Outcome
from simulator.settings import SimulatorSettings

FEATURE_STORE_GROUP = "feature_store"
TARGET_INGEST_PER_S = 5000.0
TARGET_LAG_ZERO_S = 10.0


def run_transactions(mobile_money: pd.DataFrame, n: int, run: str) -> pd.DataFrame:
    """`n` of the book's transactions with ids unique to `run`, sorted as deliveries need."""
    rows = mobile_money.sample(n=n, replace=n > len(mobile_money), random_state=0)
    rows = rows.assign(
        transaction_id=[f"{run}-{i}-{t}" for i, t in enumerate(rows["transaction_id"])]
    )
    return rows.sort_values(["member_id", "occurred_at"], ignore_index=True)


def deliveries(transactions: pd.DataFrame, batch_size: int) -> list[WebhookDelivery]:
    [lane] = lane_deliveries(transactions, batch_size=batch_size, lanes=1)
    return list(lane)


@dataclass
class LagTrace:
    """The feature store group's lag on mobile_money.transactions, once a second."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    async def follow(self, infra: InfraSettings, stop: asyncio.Event, started: float) -> None:
        async with GroupLagProbe(infra, FEATURE_STORE_GROUP, [MOBILE_MONEY_TRANSACTIONS]) as probe:
            while not stop.is_set():
                lag = await probe.sample()
                self.samples.append((round(time.perf_counter() - started, 1), lag.total))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except TimeoutError:
                    pass


async def _stream_webhooks(
    client: GatewayClient, batches: Sequence[WebhookDelivery], per_s: float, stop: asyncio.Event
) -> dict[str, int]:
    """Deliveries on a fixed schedule (`per_s` transactions a second) until sent or stopped."""
    counts = {"transactions_sent": 0, "transactions_accepted": 0, "refused": 0}
    started = time.perf_counter()
    pending: set[asyncio.Task[Outcome]] = set()

    def done(task: asyncio.Task[Outcome]) -> None:
        pending.discard(task)
        outcome = task.result()
        counts["transactions_accepted"] += outcome.count if outcome.accepted else 0
        counts["refused"] += 0 if outcome.accepted else 1

    due = 0.0
    for delivery in batches:
        if stop.is_set():
            break
        delay = started + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due += delivery.transactions / per_s
        task = asyncio.create_task(client.deliver(delivery))
        pending.add(task)
        task.add_done_callback(done)
        counts["transactions_sent"] += delivery.transactions
    await asyncio.gather(*pending)
    return counts


async def lag_zero_after(infra: InfraSettings, within: float = 300.0) -> float | None:
    """Seconds until the feature store group's lag is 0 (None: not within `within`)."""
    started = time.perf_counter()
    async with GroupLagProbe(infra, FEATURE_STORE_GROUP, [MOBILE_MONEY_TRANSACTIONS]) as probe:
        while time.perf_counter() - started < within:
            if (await probe.sample()).total == 0:
                return round(time.perf_counter() - started, 1)
            await asyncio.sleep(0.25)
    return None


async def mixed_load(
    infra: InfraSettings,
    gateway: str,
    api_bodies: Sequence[dict[str, Any]],
    headers: dict[str, str],
    mobile_money: pd.DataFrame,
    *,
    rates: Sequence[float],
    duration: float,
    webhook_per_s: float,
    run: str,
) -> dict[str, Any]:
    """The API rates in turn, webhooks at `webhook_per_s` throughout; the lag trace and the
    seconds from the last webhook to a lag of 0."""
    settings = SimulatorSettings()
    needed = int(webhook_per_s * (duration + 2) * len(rates))
    batches = deliveries(run_transactions(mobile_money, needed, run), batch_size=100)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    trace = LagTrace()
    stop_webhooks, stop_trace = asyncio.Event(), asyncio.Event()
    started = time.perf_counter()
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=10.0, limits=limits) as http,
        load_session(gateway) as api_client,
    ):
        client = GatewayClient(
            http,
            api_key=settings.api_key.get_secret_value(),
            webhook_secret=settings.webhook_secret.get_secret_value(),
        )
        tracing = asyncio.create_task(trace.follow(infra, stop_trace, started))
        streaming = asyncio.create_task(
            _stream_webhooks(client, batches, webhook_per_s, stop_webhooks)
        )
        await asyncio.sleep(2.0)  # the webhooks are flowing before the first API request
        api: list[RateResult] = []
        for rate in rates:
            api.append(
                await score_loop(
                    api_client, api_bodies, rate=rate, duration=duration, headers=headers
                )
            )
        stop_webhooks.set()
        webhooks = await streaming
        ended = time.perf_counter() - started
        recovered = await lag_zero_after(infra)
        stop_trace.set()
        await tracing
    return {
        "webhook_transactions_per_s": webhook_per_s,
        "webhooks": webhooks,
        "api": [r.as_dict() for r in api],
        "feature_store_lag": trace.samples,
        "webhooks_ended_at_s": round(ended, 1),
        "lag_zero_after_s": recovered,
        "lag_zero_target_s": TARGET_LAG_ZERO_S,
    }


#: attempts per webhook delivery in the ingestion burst (the first and the retries)
DELIVERY_ATTEMPTS = 5


async def ingestion(
    infra: InfraSettings,
    gateway: str,
    mobile_money: pd.DataFrame,
    *,
    transactions: int,
    run: str,
    concurrency: int = 16,
) -> dict[str, Any]:
    """A burst of `transactions` through the webhook route, as fast as the gateway takes them;
    transactions per second until the feature store has consumed them all."""
    settings = SimulatorSettings()
    batches = deliveries(run_transactions(mobile_money, transactions, run), batch_size=500)
    queue: asyncio.Queue[WebhookDelivery] = asyncio.Queue()
    for delivery in batches:
        queue.put_nowait(delivery)
    accepted = refused = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=gateway, timeout=30.0, limits=limits) as http:
        client = GatewayClient(
            http,
            api_key=settings.api_key.get_secret_value(),
            webhook_secret=settings.webhook_secret.get_secret_value(),
            # as a provider does: a delivery refused for back-pressure is sent again
            delivery_attempts=DELIVERY_ATTEMPTS,
        )

        async def worker() -> None:
            nonlocal accepted, refused
            while not queue.empty():
                outcome = await client.deliver(queue.get_nowait())
                accepted += outcome.count
                refused += 0 if outcome.accepted else 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    posted = time.perf_counter() - started
    caught_up = await lag_zero_after(infra, within=600.0)
    elapsed = time.perf_counter() - started
    return {
        "transactions": transactions,
        "accepted": accepted,
        "refused_deliveries": refused,
        "retried_deliveries": client.retried_deliveries,
        "posted_s": round(posted, 1),
        "elapsed_s": round(elapsed, 1),
        "caught_up": caught_up is not None,
        "transactions_per_s": round(accepted / elapsed, 1),
        "target_per_s": TARGET_INGEST_PER_S,
    }
