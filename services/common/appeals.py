"""A member's appeal as an event: one builder for the gateway (a partner through the API) and
the console (an officer), so both put the same facts on credit.appeals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged


def appeal_lodged(
    decision: CreditDecision, *, lodged_by: str, channel: str, grounds: str
) -> AppealLodged:
    """A new appeal of `decision` (its own id; the decision's application and tenant)."""
    appeal = AppealLodged(
        appeal_id=str(uuid.uuid4()),
        decision_id=decision.decision_id,
        application_id=decision.application_id,
        tenant_id=decision.tenant_id,
        lodged_by=lodged_by,
        channel=channel,
        grounds=grounds,
    )
    appeal.lodged_at.FromDatetime(datetime.now(UTC))
    return appeal
