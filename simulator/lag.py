"""Wait until a consumer group has caught up: committed offsets at the end of its topics.

Used between the history phase and the applications phase, so an application is scored after
its member's history reached the feature store rather than racing it. The lag itself is the
shared library's (`services.common.lag`), computed as the services export it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.lag import GroupLag, GroupLagProbe
from services.common.settings import InfraSettings


@dataclass(frozen=True)
class LagWait:
    caught_up: bool
    seconds: float
    lag: GroupLag


async def wait_for_group(
    infra: InfraSettings,
    group_id: str,
    topics: Sequence[str],
    *,
    within: float,
    poll_interval: float = 0.5,
) -> LagWait:
    """Poll until the group's lag on `topics` is zero, or `within` seconds pass."""
    started = time.monotonic()
    async with GroupLagProbe(infra, group_id, topics) as probe:
        lag = await probe.sample()
        while lag.total > 0 and time.monotonic() - started < within:
            await asyncio.sleep(min(poll_interval, max(within - (time.monotonic() - started), 0)))
            lag = await probe.sample()
    return LagWait(caught_up=lag.total == 0, seconds=time.monotonic() - started, lag=lag)
