"""Open-loop pacing against a fake clock: sends are due on schedule, whatever sends cost."""

from __future__ import annotations

import pytest

from simulator.pacing import Pacer, achieved_rate


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.t += seconds

    def spend(self, seconds: float) -> None:
        """Time passing in a send itself."""
        self.t += seconds


@pytest.mark.parametrize("rate", [10.0, 250.0, 2_000.0])
async def test_pacer_hits_the_rate(rate: float) -> None:
    clock = FakeClock()
    pacer = Pacer(rate, clock)
    pacer.start()
    times = [await pacer.wait_turn(i) for i in range(1_000)]

    assert achieved_rate(times) == pytest.approx(rate, rel=1e-6)
    assert times[-1] - times[0] == pytest.approx(999 / rate)
    assert pacer.max_lag_seconds == 0


async def test_pacer_is_open_loop_a_slow_send_does_not_shift_the_schedule() -> None:
    clock = FakeClock()
    pacer = Pacer(100.0, clock)
    pacer.start()
    start = clock.now()
    times = []
    for i in range(500):
        times.append(await pacer.wait_turn(i))
        if i == 10:
            clock.spend(0.5)  # a stall: the next 50 sends are already due

    # the sends after the stall go at once and the schedule catches up: the run still ends on time
    assert times[11] == pytest.approx(start + 0.6)
    assert all(t == times[11] for t in times[12:60])
    assert times[-1] == pytest.approx(start + 4.99)
    assert pacer.max_lag_seconds == pytest.approx(0.49)
    assert achieved_rate(times) == pytest.approx(100.0, rel=1e-6)


async def test_no_rate_means_no_waiting() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock)
    pacer.start()
    for i in range(100):
        await pacer.wait_turn(i)
    assert clock.slept == 0


def test_achieved_rate_needs_two_sends() -> None:
    assert achieved_rate([]) is None
    assert achieved_rate([1.0]) is None
    assert achieved_rate([1.0, 1.5, 2.0]) == pytest.approx(2.0)
