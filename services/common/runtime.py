"""How a service's asyncio program runs: on uvloop unless settings say otherwise, stopped by
SIGTERM or SIGINT.

uvloop (libuv, already installed with uvicorn's standard extras) runs the same asyncio code with
cheaper sockets, timers and callbacks; every service that owns its loop starts through
`run_until_signalled`, so the choice is one setting (`ALAMA_EVENT_LOOP`) and one place, and the
signal handling that every service repeated lives here once.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from typing import Literal

EventLoop = Literal["uvloop", "asyncio"]


def freeze_startup_heap() -> None:
    """Leave everything start-up made (half a million objects: Feast, MLflow, ONNX Runtime,
    protobuf, the services' own modules) out of the garbage collector's future passes.

    A full collection walks every tracked object: over a service's start-up heap that took
    0.5 s on this project's 2-core machines, a pause every caller in flight waits through.
    Frozen objects are never collected, which is what start-up's modules and models are for;
    garbage made afterwards is collected as before. Call it once, when start-up is done and
    before serving; the garbage start-up left is collected first.
    """
    gc.collect()
    gc.freeze()


def run(main: Callable[[], Awaitable[None]], event_loop: EventLoop = "uvloop") -> None:
    """Run `main()` to completion on the chosen event loop (after `freeze_startup_heap`: the
    imports are the bulk of a service's heap)."""
    freeze_startup_heap()

    async def program() -> None:
        await main()

    if event_loop == "uvloop":
        import uvloop

        uvloop.run(program())
    else:
        asyncio.run(program())


def use_event_loop_policy(event_loop: EventLoop) -> None:
    """For a program whose framework makes its own loop (Faust's worker, the drift and feature
    store services): the policy that loop comes from. Call it before anything makes a loop.
    On asyncio's default loop their Faust consumers spent over half their CPU in the selector
    and in waking the loop from Faust's consumer thread (py-spy, 50 decisions/s)."""
    if event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_until_signalled(
    serve: Callable[[asyncio.Event], Awaitable[None]], event_loop: EventLoop = "uvloop"
) -> None:
    """Run `serve(stop)`, where `stop` is set by SIGTERM or SIGINT (the service then finishes
    and commits its work and returns)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    run(main, event_loop)
