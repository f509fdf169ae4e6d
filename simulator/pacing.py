"""Open-loop rate control: send times are scheduled up front, not a sleep after each send.

The i-th send is due at ``start + i / rate`` however long earlier sends took, so a slow system
under test sees the load it was promised (late sends go at once and the schedule catches up)
instead of a load that politely backs off. How far behind schedule the sender fell is recorded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Pacer:
    """Due times for a fixed rate; a rate of None (or 0) sends as fast as the caller can."""

    def __init__(self, rate: float | None, clock: Clock | None = None) -> None:
        if rate is not None and rate < 0:
            raise ValueError("the rate cannot be negative")
        self.rate = rate or None
        self.clock: Clock = clock or MonotonicClock()
        self.started_at: float | None = None
        self.max_lag_seconds = 0.0

    def start(self) -> None:
        self.started_at = self.clock.now()

    def due_at(self, index: int) -> float:
        if self.started_at is None:
            self.start()
        assert self.started_at is not None
        return self.started_at if self.rate is None else self.started_at + index / self.rate

    async def wait_turn(self, index: int) -> float:
        """Wait until send `index` is due; return the clock time it goes out."""
        due = self.due_at(index)
        now = self.clock.now()
        if now < due:
            await self.clock.sleep(due - now)
            now = self.clock.now()
        elif self.rate is not None:
            self.max_lag_seconds = max(self.max_lag_seconds, now - due)
        return now


def achieved_rate(send_times: list[float]) -> float | None:
    """Sends per second between the first and the last send (None with fewer than two)."""
    if len(send_times) < 2:
        return None
    span = max(send_times) - min(send_times)
    return (len(send_times) - 1) / span if span > 0 else None
