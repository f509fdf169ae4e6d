"""The review desk: what an officer may do with a queue item, the four-eyes rule, and the
`ReviewOutcome` event each settled item becomes.

An outcome is published (and acknowledged by the broker) before the item closes: nothing an
officer is told was settled is missing from `credit.review_outcomes`, and so from the audit
chain. Its review id is derived from the item and the outcome, so a retry after a failure
republishes the same event, which consumers drop as a duplicate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common.appeals import appeal_lodged
from services.common.envelope import wrap
from services.common.kafka import publish_acknowledged
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import AppealLodged, ReviewOutcome
from services.console.metrics import REVIEW_ACTIONS
from services.console.people import APPEAL_LODGERS, REVIEWERS, Role
from services.console.settings import ConsoleSettings
from services.console.store import (
    AWAITING_SECOND,
    CLAIMED,
    SECOND_CLAIMED,
    Account,
    ConsoleStore,
    Item,
)

#: the reasons an officer gives for an outcome (code -> what it means), most used first
REASON_CODES: dict[str, str] = {
    "REVIEW_INCOME_VERIFIED": "Income verified with payslips or statements",
    "REVIEW_GUARANTORS": "Adequate guarantors pledged",
    "REVIEW_SAVINGS_HISTORY": "Consistent savings with the SACCO",
    "REVIEW_REPAYMENT_HISTORY": "Repayment history supports the loan",
    "REVIEW_UNAFFORDABLE": "Repayments unaffordable on verified income",
    "REVIEW_ARREARS": "Arrears on existing loans",
    "REVIEW_THIN_HISTORY": "Too little history to lend on",
    "REVIEW_DATA_CORRECTED": "Application data found to be wrong",
    "REVIEW_OTHER": "Other (see the justification)",
}
MIN_JUSTIFICATION_CHARS = 20
MAX_JUSTIFICATION_CHARS = 2000

APPROVE = DecisionBand.DECISION_BAND_APPROVE
DECLINE = DecisionBand.DECISION_BAND_DECLINE
OUTCOMES = {"approve": APPROVE, "decline": DECLINE}

Publish = Callable[[ReviewOutcome], Awaitable[None]]
PublishAppeal = Callable[[AppealLodged], Awaitable[None]]


class ReviewRefused(Exception):
    """An action the item's state or the person's role does not allow (a 409 or 403)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Proposal:
    """An outcome as an officer gave it."""

    outcome: str
    reason_codes: tuple[str, ...]
    justification: str

    @property
    def band(self) -> int:
        return OUTCOMES[self.outcome]

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason_codes": list(self.reason_codes),
            "justification": self.justification,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proposal:
        return cls(data["outcome"], tuple(data["reason_codes"]), data["justification"])


def proposal_of(outcome: str, reason_codes: Sequence[str], justification: str) -> Proposal:
    """Validate what an officer submitted; ValueError naming the field otherwise."""
    if outcome not in OUTCOMES:
        raise ValueError("outcome: choose approve or decline")
    codes = tuple(dict.fromkeys(reason_codes))  # order kept, repeats dropped
    if not codes:
        raise ValueError("reason codes: choose at least one")
    unknown = [c for c in codes if c not in REASON_CODES]
    if unknown:
        raise ValueError(f"reason codes: unknown {', '.join(unknown)}")
    text = justification.strip()
    if len(text) < MIN_JUSTIFICATION_CHARS:
        raise ValueError(
            f"justification: write at least {MIN_JUSTIFICATION_CHARS} characters on why"
        )
    if len(text) > MAX_JUSTIFICATION_CHARS:
        raise ValueError(f"justification: at most {MAX_JUSTIFICATION_CHARS} characters")
    if "\x00" in text:
        raise ValueError("justification: contains a NUL character")
    return Proposal(outcome, codes, text)


def needs_second_person(item: Item, proposal: Proposal, amount_limit: float) -> str | None:
    """Why this outcome needs a second person, or None: overriding a decline, or approving
    more than the tenant's amount (an amount the console has not seen counts as above)."""
    if proposal.band != APPROVE:
        return None
    if item.decision.band == DECLINE:
        return "it overrides a decline"
    amount = item.application.amount_kes if item.application else None
    if amount is None:
        return "the application's amount is not known to the console"
    if amount > amount_limit:
        return f"it approves KES {amount:,.0f}, above the tenant's KES {amount_limit:,.0f}"
    return None


def review_id_of(item: Item, proposal: Proposal, second: str) -> str:
    key = json.dumps([item.decision_id, item.appeal_id, proposal.as_json(), second])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alama:review:{key}"))


def outcome_event(
    item: Item, proposal: Proposal, reviewer: str, second: str, review_id: str
) -> ReviewOutcome:
    outcome = ReviewOutcome(
        review_id=review_id,
        decision_id=item.decision_id,
        application_id=item.decision.application_id,
        reviewer_id=reviewer,
        original_band=item.decision.band,
        final_band=proposal.band,  # type: ignore[arg-type]
        justification=proposal.justification,
        reason_codes=list(proposal.reason_codes),
        second_reviewer_id=second,
        tenant_id=item.tenant_id,
        kind=item.kind,  # type: ignore[arg-type]
        appeal_id=item.appeal_id,
    )
    outcome.reviewed_at.FromDatetime(datetime.now(UTC))
    return outcome


class EventSender:
    """Publishes one of the console's events to its topic and waits for the broker's
    acknowledgement (a timeout is an error the caller reports, never a silent loss)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, timeout_s: float) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    async def __call__(self, event: ReviewOutcome | AppealLodged) -> None:
        event_id = event.review_id if isinstance(event, ReviewOutcome) else event.appeal_id
        envelope = wrap(event, producer="console", subject=event.application_id, event_id=event_id)
        await publish_acknowledged(self.producer, self.topic, envelope, self.timeout_s)


def grounds_of(text: str) -> str:
    """A member's grounds for an appeal, validated like a justification."""
    grounds = text.strip()
    if len(grounds) < MIN_JUSTIFICATION_CHARS:
        raise ValueError(f"grounds: write at least {MIN_JUSTIFICATION_CHARS} characters")
    if len(grounds) > MAX_JUSTIFICATION_CHARS:
        raise ValueError(f"grounds: at most {MAX_JUSTIFICATION_CHARS} characters")
    if "\x00" in grounds:
        raise ValueError("grounds: contains a NUL character")
    return grounds


@dataclass(frozen=True)
class Settled:
    """What happened to an item after an officer's decision."""

    closed: bool
    review_id: str | None = None
    waiting_because: str | None = None


class ReviewDesk:
    def __init__(
        self,
        store: ConsoleStore,
        settings: ConsoleSettings,
        publish: Publish,
        publish_appeal: PublishAppeal | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.publish = publish
        self.publish_appeal = publish_appeal

    async def lodge_appeal(self, account: Account, decision_id: str, grounds: str) -> str:
        """An officer lodges a member's appeal: the event is on the broker (and so in the
        audit chain) before the decision re-enters the queue. Returns the appeal id."""
        if account.role not in APPEAL_LODGERS:
            raise ReviewRefused("your role cannot lodge appeals", status=403)
        decision = await self.store.decision(account.tenant_id, decision_id)
        if decision is None:
            raise ReviewRefused("no such decision", status=404)
        try:
            text = grounds_of(grounds)
        except ValueError as exc:
            raise ReviewRefused(str(exc), status=422) from exc
        if self.publish_appeal is None:
            raise ReviewRefused("appeals cannot be published from this console", status=503)
        appeal = appeal_lodged(
            decision, lodged_by=account.username, channel="console", grounds=text
        )
        await self.publish_appeal(appeal)
        await self.store.add_appeal(
            tenant=account.tenant_id,
            decision_id=decision_id,
            appeal_id=appeal.appeal_id,
            lodged_by=account.username,
            channel="console",
            grounds=text,
        )
        REVIEW_ACTIONS.labels(account.tenant_id, "appeal").inc()
        return appeal.appeal_id

    @property
    def claim_ttl(self) -> timedelta:
        return timedelta(minutes=self.settings.claim_minutes)

    def _reviewer(self, account: Account) -> None:
        if account.role not in REVIEWERS:
            raise ReviewRefused(
                f"a {Role(account.role).value.replace('_', ' ')} cannot settle reviews", status=403
            )

    async def claim(self, account: Account, decision_id: str) -> Item:
        self._reviewer(account)
        item = await self.store.claim(
            account.tenant_id, decision_id, account, claim_ttl=self.claim_ttl
        )
        if item is None:
            raise ReviewRefused(
                "someone else holds this item, it is settled, or it is waiting for a second"
                " person other than you"
            )
        REVIEW_ACTIONS.labels(account.tenant_id, "claim").inc()
        return item

    async def release(self, account: Account, decision_id: str) -> None:
        if not await self.store.release(account.tenant_id, decision_id, account):
            raise ReviewRefused("you do not hold this item")
        REVIEW_ACTIONS.labels(account.tenant_id, "release").inc()

    async def decide(self, account: Account, decision_id: str, proposal: Proposal) -> Settled:
        """The first person's outcome: settled now, or left for a second person."""
        self._reviewer(account)
        item = await self._held(account, decision_id, CLAIMED)
        why = needs_second_person(item, proposal, self.settings.four_eyes_amount(account.tenant_id))
        if why is not None:
            if not await self.store.propose(
                account.tenant_id, decision_id, account, proposal.as_json() | {"why": why}
            ):
                raise ReviewRefused("you no longer hold this item")
            REVIEW_ACTIONS.labels(account.tenant_id, "propose").inc()
            return Settled(closed=False, waiting_because=why)
        return await self._close(account, item, proposal, CLAIMED, reviewer=account.username)

    async def confirm(self, account: Account, decision_id: str) -> Settled:
        """The second person agrees with the proposal waiting on the item."""
        self._reviewer(account)
        item = await self._held(account, decision_id, SECOND_CLAIMED)
        if item.proposal is None or item.proposed_by_name is None:
            raise ReviewRefused("this item has no proposal to confirm")
        proposal = Proposal.from_json(item.proposal)
        return await self._close(
            account,
            item,
            proposal,
            SECOND_CLAIMED,
            reviewer=item.proposed_by_name,
            second=account.username,
        )

    async def send_back(self, account: Account, decision_id: str, why: str) -> None:
        self._reviewer(account)
        if len(why.strip()) < MIN_JUSTIFICATION_CHARS:
            raise ReviewRefused(
                f"say why in at least {MIN_JUSTIFICATION_CHARS} characters", status=422
            )
        if not await self.store.send_back(account.tenant_id, decision_id, account, why.strip()):
            raise ReviewRefused("you do not hold this item for a second look")
        REVIEW_ACTIONS.labels(account.tenant_id, "send_back").inc()

    async def _held(self, account: Account, decision_id: str, state: str) -> Item:
        item = await self.store.item(account.tenant_id, decision_id)
        if item is None:
            raise ReviewRefused("no such item", status=404)
        if item.state != state or item.claimed_by != account.account_id:
            raise ReviewRefused("claim the item first (someone else may hold it)")
        return item

    async def _close(
        self,
        account: Account,
        item: Item,
        proposal: Proposal,
        state: str,
        *,
        reviewer: str,
        second: str = "",
    ) -> Settled:
        review_id = review_id_of(item, proposal, second)
        event = outcome_event(item, proposal, reviewer, second, review_id)

        async def publish() -> None:
            await self.publish(event)

        closed = await self.store.close(
            account.tenant_id,
            item.decision_id,
            account,
            expected_state=state,
            review_id=review_id,
            final_band=proposal.band,
            detail=proposal.as_json() | {"review_id": review_id, "second": second},
            publish=publish,
        )
        if not closed:
            raise ReviewRefused("you no longer hold this item")
        REVIEW_ACTIONS.labels(account.tenant_id, proposal.outcome).inc()
        return Settled(closed=True, review_id=review_id)


__all__ = [
    "AWAITING_SECOND",
    "OUTCOMES",
    "REASON_CODES",
    "EventSender",
    "Proposal",
    "ReviewDesk",
    "ReviewRefused",
    "Settled",
    "needs_second_person",
    "proposal_of",
]
