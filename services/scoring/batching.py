"""Coalesce concurrent synchronous Score calls into scorer batches.

One Feast read and one model run for many callers costs little more than for one, so under load
the calls that arrive while the worker threads are busy wait for the next batch together. When a
thread is free a call goes at once: no fixed wait adds latency at low load (adaptive batching).

The queue is bounded: when `max_waiting` calls already wait, a new one is refused at once
(`QueueFull`, RESOURCE_EXHAUSTED to the caller, who may retry elsewhere) instead of joining a
pile-up whose callers will all miss their deadlines; and a caller who gives up (its deadline
passed, its connection closed) leaves the queue, so no thread scores for nobody.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.scoring.scorer import Outcome, Scorer


class QueueFull(RuntimeError):
    """More synchronous calls are waiting than the service accepts: shed this one."""


@dataclass
class _Waiting:
    application: LoanApplicationSubmitted
    result: asyncio.Future[Outcome]


class ScoreBatcher:
    def __init__(
        self, scorer: Scorer, *, max_size: int = 256, in_flight: int = 2, max_waiting: int = 1024
    ) -> None:
        self.scorer = scorer
        self.max_size = max_size
        self.max_waiting = max_waiting
        self.limit = max(1, in_flight)
        self.waiting: list[_Waiting] = []
        self.running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def score(self, application: LoanApplicationSubmitted) -> Outcome:
        if len(self.waiting) >= self.max_waiting:
            raise QueueFull(
                f"{len(self.waiting)} calls are already waiting to be scored; retry shortly"
            )
        waiting = _Waiting(application, asyncio.get_running_loop().create_future())
        self.waiting.append(waiting)
        if self.running < self.limit:
            self._launch()
        try:
            return await asyncio.shield(waiting.result)
        except asyncio.CancelledError:
            if waiting in self.waiting:  # not started yet: nobody scores it now
                self.waiting.remove(waiting)
            raise

    def _launch(self) -> None:
        live = [w for w in self.waiting if not w.result.done()]
        batch, self.waiting = live[: self.max_size], live[self.max_size :]
        if not batch:
            return
        self.running += 1
        task = asyncio.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self.scorer.score([w.application for w in batch], path="grpc")
        except Exception as exc:  # every caller of the batch gets the failure
            for waiting in batch:
                if not waiting.result.done():
                    waiting.result.set_exception(exc)
        else:
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if not waiting.result.done():
                    waiting.result.set_result(outcome)
        finally:
            self.running -= 1
            if self.waiting:
                self._launch()
