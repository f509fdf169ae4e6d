"""The risk officers' console: `python -m services.console` serves the pages and fills the
review queue from the topics; `add-user` and `unlock` manage people.

uvicorn handles SIGTERM and SIGINT: it stops accepting, lets in-flight requests finish within
the grace period, then the lifespan stops the consumer (committing the batch in hand), the
producer and the database pool.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.members import TENANT_PATTERN
from services.common.runtime import freeze_startup_heap
from services.common.telemetry import setup_tracing, start_metrics
from services.console.app import create_app
from services.console.people import AccountRefused, People, Role, WeakPassword
from services.console.settings import ConsoleSettings
from services.console.wiring import open_store

console = Console()
PASSWORD_VARIABLE = "ALAMA_CONSOLE_NEW_PASSWORD"


def run() -> None:
    """Serve the console and fill the review queue until SIGTERM/SIGINT."""
    settings = ConsoleSettings()
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    start_metrics(settings)
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop=settings.infra.event_loop,
        http="httptools",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


app = service_cli(run, help=__doc__)


@app.command("add-user")
def add_user(
    tenant: Annotated[str, typer.Option(help="the SACCO (tenant) the person works for")],
    username: Annotated[str, typer.Option(help="what the person signs in with")],
    role: Annotated[Role, typer.Option(help="what the person may do")],
    name: Annotated[str, typer.Option(help="the name shown beside their actions")] = "",
) -> None:
    """Add a person. The password is read from ALAMA_CONSOLE_NEW_PASSWORD or asked for (never
    an argument: it would stay in the shell's history and the process list)."""
    import re

    if not re.fullmatch(TENANT_PATTERN, tenant):
        console.print(f"[red]--tenant[/red] must match {TENANT_PATTERN}")
        raise typer.Exit(2)
    password = os.environ.get(PASSWORD_VARIABLE) or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    settings = ConsoleSettings()

    async def add() -> None:
        store = await open_store(settings)
        try:
            await People(store, settings).add(
                tenant=tenant,
                username=username,
                display_name=name or username,
                role=role,
                password=password,
            )
        finally:
            await store.pool.close()

    try:
        asyncio.run(add())
    except WeakPassword as exc:
        console.print(f"[red]password refused[/red]: {exc}")
        raise typer.Exit(2) from exc
    except AccountRefused as exc:  # a taken or malformed user name
        console.print(f"[red]{tenant}/{username} refused[/red]: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"added {tenant}/{username} as {role.value}")


@app.command()
def unlock(
    tenant: Annotated[str, typer.Option()], username: Annotated[str, typer.Option()]
) -> None:
    """Unlock an account locked by failed sign-ins."""
    settings = ConsoleSettings()

    async def go() -> bool:
        store = await open_store(settings)
        try:
            account = await store.account(tenant, username)
            return account is not None and await store.unlock(tenant, account.account_id)
        finally:
            await store.pool.close()

    if not asyncio.run(go()):
        console.print(f"[red]no account {tenant}/{username}[/red]")
        raise typer.Exit(1)
    console.print(f"unlocked {tenant}/{username}")


if __name__ == "__main__":
    app()
