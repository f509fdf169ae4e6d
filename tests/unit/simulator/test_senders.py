"""The gateway client sends a request again when the connection broke under it (a pooled
keep-alive connection closed by the server as it was reused), and only then."""

from __future__ import annotations

import httpx

from simulator.scenario import build_scenario
from simulator.senders import GatewayClient
from training.contract import LoanBook


async def test_a_broken_connection_is_retried_once_and_a_refusal_is_not(
    small_book: LoanBook,
) -> None:
    application = build_scenario(small_book, 1, "retry").applications[0]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ReadError("connection closed by the server", request=request)
        return httpx.Response(202 if len(calls) == 2 else 422)

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://gateway"
    ) as client:
        sender = GatewayClient(client, api_key="k", webhook_secret="s")
        first = await sender.submit(application)
        assert first.accepted and len(calls) == 2  # the broken one, then the retry
        refused = await sender.submit(application)
        assert not refused.accepted and refused.status == "422" and len(calls) == 3


async def test_a_delivery_refused_for_back_pressure_is_sent_again_after_retry_after() -> None:
    """As a mobile-money provider does: 503 and 429 are sent again (signed anew) after the
    gateway's Retry-After, up to the attempts allowed; any other refusal is final at once."""
    from simulator.payloads import WebhookDelivery

    delivery = WebhookDelivery(lane=0, body=b'{"transactions": []}', transactions=3)
    answers: list[httpx.Response] = []
    calls: list[str] = []
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return answers.pop(0)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://gateway"
    ) as client:
        sender = GatewayClient(
            client, api_key="k", webhook_secret="s", delivery_attempts=3, sleep=sleep
        )
        answers[:] = [
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(429),
            httpx.Response(202, json={"accepted": 3}),
        ]
        taken = await sender.deliver(delivery)
        assert taken.accepted and taken.count == 3 and len(calls) == 3
        assert slept == [2.0, 1.0] and sender.retried_deliveries == 2

        answers[:] = [httpx.Response(503) for _ in range(3)]
        refused = await sender.deliver(delivery)
        assert not refused.accepted and refused.status == "503" and len(calls) == 6

        answers[:] = [httpx.Response(401)]
        final = await sender.deliver(delivery)
        assert not final.accepted and final.status == "401" and len(calls) == 7
        assert sender.retried_deliveries == 4
