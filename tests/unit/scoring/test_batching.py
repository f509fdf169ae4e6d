"""Concurrent Score calls share scorer batches under load and go alone when a thread is free."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.scoring.batching import QueueFull, ScoreBatcher
from services.scoring.scorer import Outcome


class GatedScorer:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()

    async def score(
        self, applications: Sequence[LoanApplicationSubmitted], *, path: str
    ) -> list[Outcome]:
        self.batches.append([a.application_id for a in applications])
        await self.gate.wait()
        if any(a.application_id == "boom" for a in applications):
            raise RuntimeError("model failed")
        return [Outcome(a) for a in applications]


def app(i: int | str) -> LoanApplicationSubmitted:
    return LoanApplicationSubmitted(application_id=str(i))


async def test_calls_arriving_while_busy_share_the_next_batch() -> None:
    scorer = GatedScorer()
    batcher = ScoreBatcher(scorer, in_flight=1)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.score(app(0)))
    await asyncio.sleep(0)
    later = [asyncio.create_task(batcher.score(app(i))) for i in range(1, 6)]
    await asyncio.sleep(0)
    assert scorer.batches == [["0"]]  # went at once: nothing to wait for
    scorer.gate.set()
    outcomes = await asyncio.gather(first, *later)
    assert scorer.batches == [["0"], ["1", "2", "3", "4", "5"]]
    assert [o.application.application_id for o in outcomes] == [str(i) for i in range(6)]


async def test_batches_respect_the_size_cap_and_a_failure_reaches_its_callers_only() -> None:
    scorer = GatedScorer()
    batcher = ScoreBatcher(scorer, max_size=2, in_flight=1)  # type: ignore[arg-type]
    calls = [asyncio.create_task(batcher.score(app(i))) for i in ("a", "boom", "c", "d", "e")]
    await asyncio.sleep(0)
    scorer.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(len(b) <= 2 for b in scorer.batches)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == len(next(b for b in scorer.batches if "boom" in b))
    with pytest.raises(RuntimeError):
        raise failed[0]
    assert sum(isinstance(r, Outcome) for r in results) == 5 - len(failed)


async def test_a_full_queue_sheds_new_calls_at_once() -> None:
    scorer = GatedScorer()
    batcher = ScoreBatcher(scorer, in_flight=1, max_waiting=3)  # type: ignore[arg-type]
    running = asyncio.create_task(batcher.score(app(0)))  # takes the one thread
    await asyncio.sleep(0)
    queued = [asyncio.create_task(batcher.score(app(i))) for i in range(1, 4)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull, match="3 calls are already waiting"):
        await batcher.score(app(99))
    scorer.gate.set()
    await asyncio.gather(running, *queued)
    assert "99" not in [a for b in scorer.batches for a in b]


async def test_a_caller_who_gave_up_leaves_the_queue_and_is_not_scored() -> None:
    scorer = GatedScorer()
    batcher = ScoreBatcher(scorer, in_flight=1)  # type: ignore[arg-type]
    running = asyncio.create_task(batcher.score(app(0)))
    await asyncio.sleep(0)
    gave_up = asyncio.create_task(batcher.score(app("gone")))
    stays = asyncio.create_task(batcher.score(app("stays")))
    await asyncio.sleep(0)
    gave_up.cancel()  # as grpc does when the caller's deadline passes
    await asyncio.sleep(0)
    assert [w.application.application_id for w in batcher.waiting] == ["stays"]
    scorer.gate.set()
    await asyncio.gather(running, stays)
    assert scorer.batches == [["0"], ["stays"]]
