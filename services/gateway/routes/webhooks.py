"""The mobile-money provider's signed webhook: transactions onto Kafka for the feature store.

Checks run in a fixed order: the client address's rate (429), signature (401), freshness (409),
replay (409), then the body (422), so an unsigned caller learns nothing about what a valid body
looks like, and a flood is refused before any HMAC is computed. The body's size was checked
before it was read (shedding.BodyLimit). The body is
parsed by hand from the raw bytes the signature covers.

A delivery is remembered (Redis SET NX) before its body is validated, and forgotten again when
it is not accepted (invalid body, Kafka down): a provider's retry of the very same delivery then
gets the same 422 or a fresh chance instead of a misleading 409, while a delivery that was
accepted stays remembered until its timestamp is stale. A corrected body is a new signature and
so never collides with the rejected one.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.common.signatures import SIGNATURE_HEADER, TENANT_HEADER, TIMESTAMP_HEADER
from services.gateway.deps import BackendsDep, SettingsDep
from services.gateway.errors import InvalidRequest, ReplayedDelivery
from services.gateway.events import transaction_envelope
from services.gateway.metrics import WEBHOOK_TRANSACTIONS
from services.gateway.rate_limits import admit
from services.gateway.schemas import WebhookAccepted, WebhookDelivery
from services.gateway.security import replay_key, verify_webhook
from services.gateway.settings import GatewaySettings
from services.gateway.shedding import SHED_RESPONSES

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=SHED_RESPONSES)

BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/WebhookDelivery"}}
        },
    }
}


def parse_delivery(settings: GatewaySettings, body: bytes) -> WebhookDelivery:
    """The validated delivery, or the same 422 shape FastAPI gives for any other body."""
    try:
        delivery = WebhookDelivery.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from exc
    count = len(delivery.transactions)
    if count > settings.max_webhook_transactions:
        raise InvalidRequest(
            f"a delivery holds at most {settings.max_webhook_transactions} transactions,"
            f" got {count}; split it",
            loc=("body", "transactions"),
        )
    return delivery


@router.post(
    "/mobile-money",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    openapi_extra=BODY_SCHEMA,
    responses={
        401: {"description": "Missing or invalid signature"},
        409: {"description": "Stale or replayed delivery"},
        413: {"description": "The delivery is larger than the webhook's body limit"},
        429: {"description": "Too many deliveries from this address; see Retry-After"},
        503: {"description": "Kafka or Redis is unavailable"},
    },
)
async def mobile_money(
    request: Request,
    settings: SettingsDep,
    backends: BackendsDep,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    tenant: Annotated[str | None, Header(alias=TENANT_HEADER)] = None,
) -> WebhookAccepted:
    """Accept a signed batch of transactions; each becomes one event, delivered before 202."""
    if backends.limiter is not None:
        address = request.client.host if request.client is not None else "unknown"
        admit(request, await backends.limiter.spend_address(address))
    body = await request.body()
    sent = verify_webhook(
        settings, timestamp=timestamp, signature=signature, body=body, tenant=tenant
    )
    owner = tenant or settings.webhook_tenant
    assert signature is not None  # verify_webhook rejects a missing one
    key = replay_key(signature)
    ttl = settings.webhook_tolerance_seconds + max(0, sent - int(time.time()))
    if not await backends.replay.claim(key, ttl):
        raise ReplayedDelivery("this delivery was already accepted; it is not processed twice")
    try:
        delivery = parse_delivery(settings, body)
        envelopes = [transaction_envelope(settings, owner, t) for t in delivery.transactions]
        await backends.events.publish(settings.transactions_topic, envelopes)
    except BaseException:
        await backends.replay.release(key)
        raise
    WEBHOOK_TRANSACTIONS.inc(len(envelopes))
    return WebhookAccepted(accepted=len(envelopes))
