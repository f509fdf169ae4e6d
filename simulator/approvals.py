"""Which applications core banking funds: those Alama approved, learnt as core banking would.

A synchronous score answers with the decision; otherwise core banking asks the gateway for the
application's decision (`GET /v1/applications/{id}/decision`), and for one in review, the
decision itself (`GET /v1/decisions/{decision_id}`), whose `review` is the outcome that stands.
It asks again until every application is settled or the wait is over; an application still in
review, or not decided at all, when the wait ends gets no loan (and is counted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

APPROVE = "approve"
REVIEW = "review"
DECLINE = "decline"


class Verdict(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    APPROVED_ON_REVIEW = "approved_on_review"
    DECLINED_ON_REVIEW = "declined_on_review"
    IN_REVIEW = "in_review"  # still waiting for a person when the wait ended
    UNDECIDED = "undecided"  # no decision when the wait ended
    UNSPECIFIED = "unspecified"  # decided without a band core banking can act on

    @property
    def funded(self) -> bool:
        return self in (Verdict.APPROVED, Verdict.APPROVED_ON_REVIEW)

    @property
    def settled(self) -> bool:
        return self not in (Verdict.IN_REVIEW, Verdict.UNDECIDED)


@dataclass(frozen=True)
class DecisionView:
    """What core banking reads of a decision: its band and, where a person reviewed it, the
    band that stands."""

    decision_id: str
    band: str
    review_band: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> DecisionView:
        review = body.get("review")
        return cls(
            decision_id=str(body["decision_id"]),
            band=str(body["band"]),
            review_band=str(review["band"]) if isinstance(review, Mapping) else None,
        )


def verdict_of(decision: DecisionView | None) -> Verdict:
    if decision is None:
        return Verdict.UNDECIDED
    if decision.band == APPROVE:
        return Verdict.APPROVED
    if decision.band == DECLINE:
        return Verdict.DECLINED
    if decision.band != REVIEW:
        return Verdict.UNSPECIFIED
    if decision.review_band == APPROVE:
        return Verdict.APPROVED_ON_REVIEW
    if decision.review_band == DECLINE:
        return Verdict.DECLINED_ON_REVIEW
    return Verdict.IN_REVIEW  # not reviewed yet (or a review that settled on review)


class DecisionReader(Protocol):
    """The gateway's two decision routes, None while there is nothing (yet) to read."""

    async def application_decision(self, application_id: str) -> DecisionView | None: ...

    async def reviewed_decision(self, decision_id: str) -> DecisionView | None: ...


async def learn_verdicts(
    reader: DecisionReader,
    application_ids: Iterable[str],
    *,
    known: Mapping[str, DecisionView] | None = None,
    within: float = 60.0,
    interval: float = 1.0,
    concurrency: int = 16,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> dict[str, Verdict]:
    """Each application's verdict, asking `reader` in rounds `interval` apart until all are
    settled or `within` seconds have passed. `known` holds decisions already answered (a
    synchronous score): those are asked again only while they wait on a review."""
    ids = list(dict.fromkeys(application_ids))
    seen: dict[str, DecisionView | None] = {i: (known or {}).get(i) for i in ids}
    verdicts = {i: verdict_of(seen[i]) for i in ids}
    deadline = clock() + within
    slots = asyncio.Semaphore(concurrency)

    async def ask(application_id: str) -> None:
        async with slots:
            decision = seen[application_id]
            if decision is None:
                decision = await reader.application_decision(application_id)
            if decision is not None and verdict_of(decision) is Verdict.IN_REVIEW:
                decision = await reader.reviewed_decision(decision.decision_id) or decision
            seen[application_id] = decision
            verdicts[application_id] = verdict_of(decision)

    first = True
    while True:
        pending = [i for i in ids if not verdicts[i].settled]
        if not pending:
            break
        if not first:
            if clock() + interval > deadline:
                break
            await sleep(interval)
        first = False
        await asyncio.gather(*(ask(i) for i in pending))
    return verdicts
