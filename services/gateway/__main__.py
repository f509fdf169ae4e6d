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
from services.gateway.security import SCOPES, issue_token
from services.gateway.settings import GatewaySettings

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
    ttl_minutes: Annotated[int, typer.Option(min=1, help="minutes until it expires")] = 60,
) -> None:
    """Print a signed bearer JWT for the configured secret and issuer."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s) {unknown}; known: {list(SCOPES)}")
    settings = GatewaySettings()
    jwt = issue_token(settings, subject, scope, timedelta(minutes=ttl_minutes))
    console.print(jwt, soft_wrap=True, highlight=False)


if __name__ == "__main__":
    cli()
