"""The agents hold records while the tables recover: applied earlier, an event is overwritten by
the changelog's history and lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import faust

from services.feature_store.agents import _tables_recovered


def _app(*, rebalancing: bool) -> Any:
    # a session timeout far shorter than the recovery: the wait must not end on it
    return SimpleNamespace(
        rebalancing=rebalancing,
        rebalancing_count=1,
        conf=SimpleNamespace(broker_session_timeout=0.05),
    )


async def test_no_rebalance_no_wait() -> None:
    await asyncio.wait_for(_tables_recovered(cast(faust.App, _app(rebalancing=False))), 0.5)


async def test_records_wait_for_a_recovery_slower_than_the_session_timeout() -> None:
    app = _app(rebalancing=True)
    waiting = asyncio.create_task(_tables_recovered(cast(faust.App, app)))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # still held, long past the session timeout
    app.rebalancing = False  # recovery done: Faust's on_rebalance_end
    await asyncio.wait_for(waiting, 1.0)


async def test_a_new_rebalance_releases_the_records_so_its_revocation_can_finish() -> None:
    app = _app(rebalancing=True)
    waiting = asyncio.create_task(_tables_recovered(cast(faust.App, app)))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    app.rebalancing_count += 1  # Faust's on_rebalance_start for the next generation
    await asyncio.wait_for(waiting, 1.0)
