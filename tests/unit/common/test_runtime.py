"""Services run on uvloop unless told otherwise, and SIGTERM lets them finish."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import uvloop

from services.common.runtime import run, run_until_signalled, use_event_loop_policy


@pytest.mark.parametrize(("choice", "loop_type"), [("uvloop", uvloop.Loop), ("asyncio", None)])
def test_the_event_loop_is_a_setting(choice: str, loop_type: type | None) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    run(main, choice)  # type: ignore[arg-type]
    [loop] = seen
    if loop_type is None:
        assert not isinstance(loop, uvloop.Loop)
    else:
        assert isinstance(loop, loop_type)


def test_sigterm_sets_stop_and_the_service_finishes_its_work() -> None:
    finished: list[str] = []

    async def serve(stop: asyncio.Event) -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), timeout=5)
        finished.append("committed")  # what a service does after stop: finish, commit, close

    run_until_signalled(serve)
    assert finished == ["committed"]


def test_what_start_up_made_is_left_out_of_the_collectors_passes() -> None:
    """A full collection over a service's start-up heap paused every caller for 0.5 s; the heap
    start-up made is frozen before serving, so later passes walk only what serving made."""
    import gc

    gc.unfreeze()
    start_up = [{"module": i} for i in range(1000)]  # what imports and models leave behind
    frozen: list[int] = []

    async def main() -> None:
        frozen.append(gc.get_freeze_count())

    try:
        run(main)
        assert frozen[0] >= len(start_up)
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual


def test_the_loop_policy_for_frameworks_that_make_their_own_loop() -> None:
    before = asyncio.get_event_loop_policy()
    try:
        use_event_loop_policy("uvloop")
        loop = asyncio.new_event_loop()
        assert isinstance(loop, uvloop.Loop)
        loop.close()
        asyncio.set_event_loop_policy(None)
        use_event_loop_policy("asyncio")  # the default policy is left as it is
        loop = asyncio.new_event_loop()
        assert not isinstance(loop, uvloop.Loop)
        loop.close()
    finally:
        asyncio.set_event_loop_policy(before)
