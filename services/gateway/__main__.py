"""The gateway: `python -m services.gateway` (or `... run`) serves the API; `token` prints a
bearer JWT, `api-key` makes a partner's API key.

uvicorn handles SIGTERM and SIGINT: it stops accepting, lets in-flight requests finish within
the grace period, then runs the lifespan's shutdown (Kafka producer, Redis, gRPC channels).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.runtime import freeze_startup_heap
from services.common.telemetry import setup_tracing
from services.gateway.app import create_app
from services.gateway.security import SCOPES, issue_token, new_api_key
from services.gateway.settings import ApiKey, GatewaySettings

console = Console()


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logs configured above
        access_log=False,
        loop=settings.infra.event_loop,  # uvloop unless ALAMA_EVENT_LOOP=asyncio
        http="httptools",  # the C parser (uvicorn's standard extras)
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


def run() -> None:
    """Serve the API on the configured host and port until SIGTERM/SIGINT."""
    serve(GatewaySettings())


app = service_cli(run, help=__doc__)


@app.command()
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


@app.command("api-key")
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
    app()
