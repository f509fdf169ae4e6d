"""An in-process stand-in for the gateway's two simulator-facing routes, checking the contract."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.common.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches

APPLICATION_KEYS = {
    "application_id",
    "member_id",
    "sacco_id",
    "product",
    "amount_kes",
    "term_months",
    "applied_at",
    "channel",
    "declared_monthly_income_kes",
    "national_id",
    "attributes",
}
#: The keys a body may leave out when the loan book has no value for them.
OPTIONAL_APPLICATION_KEYS = {"channel", "declared_monthly_income_kes", "national_id", "attributes"}
TRANSACTION_KEYS = {
    "transaction_id",
    "member_id",
    "kind",
    "amount_kes",
    "balance_kes",
    "occurred_at",
    "provider",
}


class GatewayDouble:
    """Records what it receives; 401 on a bad key or signature, 422 on a contract breach."""

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        reject_member: str | None = None,
        crash_member: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.reject_member = reject_member
        self.crash_member = (
            crash_member  # its application raises out of the client, not an HTTP error
        )
        self.applications: list[dict[str, Any]] = []
        self.application_headers: list[dict[str, str]] = []
        self.transactions: list[dict[str, Any]] = []
        self.delivery_sizes: list[int] = []
        self.bad_signatures = 0
        self.app = FastAPI()
        self.app.post("/v1/applications")(self.submit)
        self.app.post("/v1/webhooks/mobile-money")(self.webhook)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway.test"
        )

    async def submit(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != self.api_key:
            return JSONResponse({"detail": "bad key"}, status_code=401)
        body = await request.json()
        keys = set(body)
        if not APPLICATION_KEYS - OPTIONAL_APPLICATION_KEYS <= keys <= APPLICATION_KEYS:
            return JSONResponse({"detail": sorted(keys ^ APPLICATION_KEYS)}, status_code=422)
        if body["member_id"] == self.crash_member:
            raise RuntimeError("the connection broke in a way httpx does not wrap")
        if body["member_id"] == self.reject_member:
            return JSONResponse({"detail": "rejected for the test"}, status_code=422)
        self.applications.append(body)
        self.application_headers.append(dict(request.headers))
        return JSONResponse(
            {
                "application_id": body["application_id"],
                "status": "pending",
                "decision_url": f"/v1/decisions/{body['application_id']}",
            },
            status_code=202,
        )

    async def webhook(self, request: Request) -> Response:
        raw = await request.body()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature_matches(self.webhook_secret, timestamp, raw, signature):
            self.bad_signatures += 1
            return JSONResponse({"detail": "bad signature"}, status_code=401)
        transactions = (await request.json())["transactions"]
        if not 1 <= len(transactions) <= 500 or any(
            set(t) != TRANSACTION_KEYS for t in transactions
        ):
            return JSONResponse({"detail": "contract"}, status_code=422)
        self.delivery_sizes.append(len(transactions))
        self.transactions.extend(transactions)
        return JSONResponse({"accepted": len(transactions)}, status_code=202)
