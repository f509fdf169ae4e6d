"""Start the gateway: `python -m services.gateway` serves; `... token` prints a bearer JWT.

uvicorn handles SIGTERM and SIGINT: it stops accepting, lets in-flight requests finish within
the grace period, then runs the lifespan's shutdown (Kafka producer, Redis, gRPC channels).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from services.common.logs import configure_logging
from services.common.telemetry import setup_tracing
from services.gateway.app import create_app
from services.gateway.security import SCOPES, issue_token, new_api_key
from services.gateway.settings import ApiKey, GatewaySettings

cli = typer.Typer(add_completion=False, help="The Alama REST gateway.")
console = Console()


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logs configured above
        access_log=False,
        loop=settings.infra.event_loop,  # uvloop unless ALAMA_EVENT_LOOP=asyncio
        http="httptools",  # the C parser (uvicorn's standard extras)
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


@cli.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Serve the API (the default when no command is given)."""
    if ctx.invoked_subcommand is None:
        serve(GatewaySettings())


@cli.command("serve")
def serve_command() -> None:
    """Serve the API on the configured host and port."""
    serve(GatewaySettings())


@cli.command()
def token(
    subject: Annotated[str, typer.Option(help="who the token is for, e.g. officer-1")],
    scope: Annotated[
        list[str],
        typer.Option(help=f"a scope to grant (repeatable): {', '.join(SCOPES)}"),
    ],
    tenant: Annotated[str, typer.Option(help="the SACCO or partner the token acts for")],
    ttl_minutes: Annotated[int, typer.Option(min=1, help="minutes until it expires")] = 60,
) -> None:
    """Print a signed bearer JWT for the configured secret, issuer and audience."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s) {unknown}; known: {list(SCOPES)}")
    settings = GatewaySettings()
    try:
        jwt = issue_token(settings, subject, scope, timedelta(minutes=ttl_minutes), tenant=tenant)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(jwt, soft_wrap=True, highlight=False)


@cli.command("api-key")
def api_key(
    name: Annotated[str, typer.Option(help="who the key is for, e.g. the partner's name")],
    tenant: Annotated[str, typer.Option(help="the SACCO or partner the key acts for")],
    scope: Annotated[
        list[str],
        typer.Option(help=f"a scope to grant (repeatable): {', '.join(SCOPES)}"),
    ],
) -> None:
    """Make a new API key: the key (give it to the partner once; it is not stored) and the
    entry to add to ALAMA_GATEWAY_API_KEYS (a random salt and the salted SHA-256)."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s) {unknown}; known: {list(SCOPES)}")
    key, salt, digest = new_api_key()
    try:
        entry = ApiKey(name=name, tenant=tenant, salt=salt, sha256=digest, scopes=scope)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"key:   {key}", soft_wrap=True, highlight=False)
    console.print(f"entry: {entry.model_dump_json()}", soft_wrap=True, highlight=False)


if __name__ == "__main__":
    cli()
