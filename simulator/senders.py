"""How the simulator reaches the system: the gateway over HTTP, and Kafka as core banking does.

Every send returns an `Outcome` rather than raising: a run keeps going and counts what failed,
by HTTP status or by exception name.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx
import pandas as pd
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate

from services.common import topics
from services.common.kafka import publish
from simulator.approvals import DecisionView
from simulator.events import application_envelope, loan_envelope, repayment_envelopes
from simulator.loans import Loan, repayments_frame
from simulator.payloads import (
    API_KEY_HEADER,
    WebhookDelivery,
    application_body,
    encode_json,
)
from simulator.scenario import ApplicationRequest

APPLICATIONS_PATH = "/v1/applications"
SCORES_PATH = "/v1/scores"
DECISIONS_PATH = "/v1/decisions"
WEBHOOK_PATH = "/v1/webhooks/mobile-money"
KAFKA_OK = "kafka"


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    status: str  # the HTTP status code, "kafka" for a delivered record, or the exception's name
    count: int = 1  # items the receiver took (transactions in a webhook delivery)
    decision: DecisionView | None = None  # a synchronous score's answer


class ApplicationSender(Protocol):
    async def submit(self, application: ApplicationRequest) -> Outcome: ...


#: refusals a provider sends again later: the gateway is busy, not the delivery wrong
BACK_PRESSURE = frozenset({429, 503})
#: the longest a resend waits, whatever Retry-After says
MAX_RETRY_AFTER_SECONDS = 10.0


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _failure(exc: BaseException) -> Outcome:
    return Outcome(accepted=False, status=type(exc).__name__, count=0)


class GatewayClient:
    """Partner API and mobile-money provider calls to the gateway."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        webhook_secret: str,
        tenant: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        delivery_attempts: int = 1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if delivery_attempts < 1:
            raise ValueError("delivery_attempts must be at least 1")
        self.client = client
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.tenant = tenant  # whose members the deliveries are about (X-Alama-Tenant)
        self.wall_clock = wall_clock
        #: a webhook delivery refused for back-pressure (429, 503) is sent again after the
        #: gateway's Retry-After, as a mobile-money provider does, up to this many times in all
        self.delivery_attempts = delivery_attempts
        self.sleep = sleep
        self.retried_deliveries = 0

    async def _post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST once more when the connection broke under the request: a pooled keep-alive
        connection the server closed as it was reused (httpx's ReadError or
        RemoteProtocolError). Both routes are idempotent (an application id, a transaction id),
        so a request the server did take comes back a duplicate, never a second fact."""
        try:
            return await self.client.post(path, content=content, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            return await self.client.post(path, content=content, headers=headers)

    async def submit(self, application: ApplicationRequest) -> Outcome:
        headers = {API_KEY_HEADER: self.api_key, "Content-Type": "application/json"}
        propagate.inject(headers)  # the gateway continues this application's trace
        try:
            response = await self._post(
                APPLICATIONS_PATH, encode_json(application_body(application)), headers
            )
        except httpx.HTTPError as exc:
            return _failure(exc)
        return Outcome(accepted=response.status_code == 202, status=str(response.status_code))

    async def score(self, application: ApplicationRequest) -> Outcome:
        """Score synchronously (`POST /v1/scores`): the decision comes back in the answer. Not
        retried on a broken connection: a second call could score twice."""
        headers = {API_KEY_HEADER: self.api_key, "Content-Type": "application/json"}
        propagate.inject(headers)
        try:
            response = await self.client.post(
                SCORES_PATH, content=encode_json(application_body(application)), headers=headers
            )
        except httpx.HTTPError as exc:
            return _failure(exc)
        if response.status_code != 200:
            return Outcome(accepted=False, status=str(response.status_code), count=0)
        try:
            decision = DecisionView.from_json(response.json())
        except (ValueError, KeyError, TypeError):
            decision = None  # scored, but the answer is unreadable: asked for again later
        return Outcome(accepted=True, status="200", decision=decision)

    async def _get_decision(self, path: str) -> DecisionView | None:
        """A decision, or None while there is none to read (404, an error, an odd answer)."""
        try:
            response = await self.client.get(path, headers={API_KEY_HEADER: self.api_key})
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            return DecisionView.from_json(response.json())
        except (ValueError, KeyError, TypeError):
            return None

    async def application_decision(self, application_id: str) -> DecisionView | None:
        return await self._get_decision(f"{APPLICATIONS_PATH}/{application_id}/decision")

    async def reviewed_decision(self, decision_id: str) -> DecisionView | None:
        return await self._get_decision(f"{DECISIONS_PATH}/{decision_id}")

    async def deliver(self, delivery: WebhookDelivery) -> Outcome:
        """POST one delivery, signed now over the exact bytes sent; sent again (signed anew)
        after Retry-After while the gateway refuses it for back-pressure, `delivery_attempts`
        times in all. Transaction ids make a resent record a duplicate, never a second fact."""
        for attempt in range(1, self.delivery_attempts + 1):
            headers = delivery.headers(self.webhook_secret, int(self.wall_clock()), self.tenant)
            try:
                response = await self._post(WEBHOOK_PATH, delivery.body, headers)
            except httpx.HTTPError as exc:
                return _failure(exc)
            if response.status_code not in BACK_PRESSURE or attempt == self.delivery_attempts:
                break
            self.retried_deliveries += 1
            await self.sleep(_retry_after(response))
        accepted = response.status_code == 202
        count = delivery.transactions if accepted else 0
        if accepted:
            try:
                count = int(response.json().get("accepted", count))
            except (ValueError, AttributeError):
                pass  # a 202 without the documented body still took the delivery
        return Outcome(accepted=accepted, status=str(response.status_code), count=count)


class SyncScoring:
    """Applications scored synchronously through the gateway (`--via scores`)."""

    def __init__(self, gateway: GatewayClient) -> None:
        self.gateway = gateway

    async def submit(self, application: ApplicationRequest) -> Outcome:
        return await self.gateway.score(application)


class KafkaCoreBanking:
    """Core banking publishing straight to Kafka: repayments, disbursed loans, and applications
    `--via kafka`."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        namespace: uuid.UUID,
        *,
        applications_topic: str,
        repayments_topic: str,
        tenant: str,
        loans_topic: str = topics.LOANS,
    ) -> None:
        self.producer = producer
        self.namespace = namespace
        self.tenant = tenant
        self.applications_topic = applications_topic
        self.repayments_topic = repayments_topic
        self.loans_topic = loans_topic

    async def submit(self, application: ApplicationRequest) -> Outcome:
        envelope = application_envelope(application, self.namespace, self.tenant)
        try:
            await (await publish(self.producer, self.applications_topic, envelope))
        except Exception as exc:  # a broker error is counted, the run goes on
            return _failure(exc)
        return Outcome(accepted=True, status=KAFKA_OK)

    async def publish_loans(
        self, loans: list[Loan], *, on_outcome: Callable[[Outcome], None] | None = None
    ) -> list[Outcome]:
        """One LoanDisbursed per loan, awaited together (the instalments go after, with
        `publish_repayments(repayments_frame(loans))`)."""
        pending = [
            await publish(
                self.producer, self.loans_topic, loan_envelope(loan, self.namespace, self.tenant)
            )
            for loan in loans
        ]
        outcomes = [
            _failure(result)
            if isinstance(result, BaseException)
            else Outcome(accepted=True, status=KAFKA_OK)
            for result in await asyncio.gather(*pending, return_exceptions=True)
        ]
        for outcome in outcomes:
            if on_outcome is not None:
                on_outcome(outcome)
        return outcomes

    async def publish_instalments(
        self, loans: list[Loan], *, on_outcome: Callable[[Outcome], None] | None = None
    ) -> list[Outcome]:
        """The loans' instalments on the repayments topic, as the history's repayments go."""
        return await self.publish_repayments(repayments_frame(loans), on_outcome=on_outcome)

    async def publish_repayments(
        self,
        repayments: pd.DataFrame,
        *,
        window: int = 5_000,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Queue every repayment, awaiting deliveries `window` at a time to bound memory."""
        outcomes: list[Outcome] = []
        pending: list[asyncio.Future[object]] = []

        async def settle(futures: Iterable[asyncio.Future[object]]) -> None:
            for result in await asyncio.gather(*futures, return_exceptions=True):
                outcome = (
                    _failure(result)
                    if isinstance(result, BaseException)
                    else Outcome(accepted=True, status=KAFKA_OK)
                )
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)

        for envelope in repayment_envelopes(repayments, self.namespace, self.tenant):
            pending.append(await publish(self.producer, self.repayments_topic, envelope))
            if len(pending) >= window:
                await settle(pending)
                pending = []
        await settle(pending)
        return outcomes
