"""Integration fixtures: the tiny trained model (`tiny_bundle`) lives in tests/conftest.py; the
console's web app on the real PostgreSQL (`open_console`) is shared by the console's page tests."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from services.common.postgres import create_pool
from services.common.settings import InfraSettings

if TYPE_CHECKING:  # imported where used, so no other integration test depends on the console
    from services.console.app import Console
    from services.console.settings import ConsoleSettings

CONSOLE_URL = "http://console.test"


@dataclass
class ConsoleSite:
    """The console's app (its lifespan running) and a way to open browsers on it."""

    console: Console
    settings: ConsoleSettings
    transport: httpx.ASGITransport

    def browser(self) -> httpx.AsyncClient:
        """A client with its own cookie jar (one person); redirects are followed by hand."""
        return httpx.AsyncClient(transport=self.transport, base_url=CONSOLE_URL)


OpenConsole = Callable[..., contextlib.AbstractAsyncContextManager[ConsoleSite]]


async def _no_broker(_event: Any) -> None:
    raise RuntimeError("these tests publish nothing")


@pytest.fixture
def open_console(infra: InfraSettings) -> OpenConsole:
    """Opens the console's app on a scratch schema of the real PostgreSQL, with `overrides` of
    its settings; no broker (the pages under test neither read nor publish events)."""

    @contextlib.asynccontextmanager
    async def opened(**overrides: Any) -> AsyncIterator[ConsoleSite]:
        from services.console.app import Console, create_app
        from services.console.people import People
        from services.console.review import ReviewDesk
        from services.console.settings import ConsoleSettings
        from services.console.wiring import open_store

        run = uuid.uuid4().hex[:10]
        settings = ConsoleSettings(
            infra=infra,
            db_schema=f"console_web_{run}",
            consumer_group=f"console-web-{run}",
            explanation_target="127.0.0.1:1",
            cookie_secure=False,  # plain http to the in-process app (development mode)
            **overrides,
        )

        async def build(s: ConsoleSettings) -> Console:
            store = await open_store(s)
            return Console(
                settings=s,
                store=store,
                people=People(store, s),
                desk=ReviewDesk(store, s, _no_broker, _no_broker),
                explanations=None,
                closers=[store.pool.close],
            )

        app = create_app(settings, build)
        try:
            async with app.router.lifespan_context(app):
                yield ConsoleSite(app.state.console, settings, httpx.ASGITransport(app=app))
        finally:
            pool = await create_pool(infra, max_size=1)
            await pool.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
            await pool.close()

    return opened


def csrf_of(page: httpx.Response) -> str:
    """The session's CSRF token as a signed-in page carries it."""
    found = re.search(r'data-csrf="([^"]+)"', page.text)
    assert found, "the page carries no CSRF token: nobody is signed in"
    return found.group(1)
