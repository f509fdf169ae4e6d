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
