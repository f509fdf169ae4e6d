"""The challenger in shadow: every fresh decision is shadowed, off the champion's path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from services.common.bundle import ServedBundle
from services.common.protos.alama.events.v1.applications_pb2 import (
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.scoring.applications import validate
from services.scoring.decisions import decision_id
from services.scoring.ledger import MemoryLedger
from services.scoring.scorer import Decided, Outcome, Scorer
from services.scoring.shadow import Shadow, shadow_decision_id


class Version:
    def __init__(self, version: str) -> None:
        self.version = version


def decide(a: LoanApplicationSubmitted, version: str, band: int) -> CreditDecision:
    decision = CreditDecision(
        decision_id=decision_id(a, version),
        application_id=a.application_id,
        member_id=a.member_id,
        tenant_id=a.tenant_id,
        model_version=version,
        band=band,  # type: ignore[arg-type]
    )
    decision.decided_at.FromDatetime(datetime.now(UTC))
    if a.HasField("applied_at"):
        decision.applied_at.CopyFrom(a.applied_at)
    return decision


class TwoModelScorer(Scorer):
    """The scorer's real batching, ledger and hand-over to the shadow, with models that
    approve (the champion) and send to review (the challenger); the challenger cannot decide
    member M-odd, and can be held back to play a slow challenger."""

    def __init__(self) -> None:
        super().__init__(
            features=None,  # type: ignore[arg-type]
            model=Version("champ-1"),  # type: ignore[arg-type]
            bundle_dir=".",
            ledger=MemoryLedger(),
            threads=1,
        )
        self.challenger_free = threading.Event()
        self.challenger_free.set()

    def _score_sync(
        self, applications: list[LoanApplicationSubmitted], model: object
    ) -> list[Outcome]:  # type: ignore[override]
        outcomes = []
        for a in applications:
            rejection = validate(a)
            outcomes.append(
                Outcome(a, rejection=rejection)
                if rejection
                else Outcome(
                    a, decision=decide(a, self.model_version, DecisionBand.DECISION_BAND_APPROVE)
                )
            )
        return outcomes

    def rescore(
        self, decided: Sequence[Decided], model: ServedBundle
    ) -> list[CreditDecision | None]:
        assert self.challenger_free.wait(timeout=10)
        return [
            None
            if d.application.member_id == "M-odd"
            else decide(d.application, model.version, DecisionBand.DECISION_BAND_REVIEW)
            for d in decided
        ]


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[CreditDecision] = []

    async def publish_shadow(self, decision: CreditDecision) -> asyncio.Future[object]:
        self.published.append(decision)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def app(app_id: str, member: str = "M1") -> LoanApplicationSubmitted:
    application = LoanApplicationSubmitted(
        application_id=app_id,
        tenant_id="sacco-a",
        member_id=member,
        product=LoanProduct.LOAN_PRODUCT_EMERGENCY,
        amount_kes=5000.0,
        term_months=6,
    )
    application.applied_at.FromDatetime(datetime(2026, 7, 1, tzinfo=UTC))
    return application


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def agreement(champion: str, challenger: str) -> float:
    return sample(
        "alama_scoring_shadow_bands_total",
        {"champion_band": champion, "challenger_band": challenger},
    )


async def test_fresh_decisions_are_shadowed_with_ids_of_their_own() -> None:
    scorer, publisher = TwoModelScorer(), RecordingPublisher()
    shadow = Shadow(scorer, publisher)  # type: ignore[arg-type]
    assert scorer.shadow is shadow
    (before,) = await scorer.score([app("A0")], path="grpc")
    assert shadow.queue.empty()  # no challenger: nothing queued

    shadow.model = Version("chall-2")  # type: ignore[assignment]
    running = asyncio.create_task(shadow.run())
    published = sample("alama_scoring_shadow_decisions_total")
    switched = agreement("approve", "review")
    unscoreable = sample("alama_scoring_shadow_dropped_total", {"reason": "unscoreable"})
    try:
        outcomes = await scorer.score(
            [app("A0"), app("A1"), app("A2", member="M-odd"), app("")], path="grpc"
        )
        await asyncio.wait_for(shadow.queue.join(), timeout=5)
    finally:
        running.cancel()
    champion = {o.application.application_id: o.decision for o in outcomes if o.decision}
    assert champion["A0"] == before.decision  # a standing decision is not shadowed again
    shadowed = {d.application_id: d for d in publisher.published}
    assert set(shadowed) == {"A1"}  # A2's member the challenger cannot decide; "" is invalid
    mirror, original = shadowed["A1"], champion["A1"]
    assert original is not None and original.model_version == "champ-1"
    assert mirror.model_version == "chall-2"
    assert mirror.decision_id == shadow_decision_id(original.decision_id, "chall-2")
    assert mirror.decision_id not in {original.decision_id, decision_id(app("A1"), "chall-2")}
    for field in ("application_id", "member_id", "tenant_id", "applied_at"):
        assert getattr(mirror, field) == getattr(original, field), field
    assert sample("alama_scoring_shadow_decisions_total") == published + 1
    assert agreement("approve", "review") == switched + 1
    after = sample("alama_scoring_shadow_dropped_total", {"reason": "unscoreable"})
    assert after == unscoreable + 1


async def test_a_slow_challenger_neither_delays_the_champion_nor_queues_without_bound() -> None:
    scorer, publisher = TwoModelScorer(), RecordingPublisher()
    shadow = Shadow(scorer, publisher, max_pending=2)  # type: ignore[arg-type]
    shadow.model = Version("chall-2")  # type: ignore[assignment]
    scorer.challenger_free.clear()  # the challenger is stuck
    running = asyncio.create_task(shadow.run())
    dropped = sample("alama_scoring_shadow_dropped_total", {"reason": "queue_full"})
    try:
        async with asyncio.timeout(5):  # every champion answer comes back meanwhile
            for i in range(6):
                (outcome,) = await scorer.score([app(f"B{i}")], path="grpc")
                assert outcome.decision is not None and outcome.decision.model_version == "champ-1"
        # one batch in the challenger's hands, two waiting, the other three dropped
        assert shadow.queue.qsize() == 2
        assert sample("alama_scoring_shadow_dropped_total", {"reason": "queue_full"}) == (
            dropped + 3
        )
        scorer.challenger_free.set()
        await asyncio.wait_for(shadow.queue.join(), timeout=5)
    finally:
        running.cancel()
        shadow.close()
    assert sorted(d.application_id for d in publisher.published) == ["B0", "B1", "B2"]


async def test_shadowing_stops_when_the_challenger_goes_or_becomes_the_champion() -> None:
    scorer, publisher = TwoModelScorer(), RecordingPublisher()
    shadow = Shadow(scorer, publisher)  # type: ignore[arg-type]
    shadow.model = Version("chall-2")  # type: ignore[assignment]
    await scorer.score([app("C0")], path="kafka")
    queued = shadow.queue.get_nowait()
    shadow.model = None  # the alias was removed while the batch waited
    assert await shadow.shadow(queued.decided) == 0
    shadow.model = Version("champ-1")  # type: ignore[assignment]  # the same bundle as champion
    assert await shadow.shadow(queued.decided) == 0
    assert not publisher.published
    shadow.model = Version("chall-2")  # type: ignore[assignment]
    assert await shadow.shadow(queued.decided) == 1
    shadow.close()
