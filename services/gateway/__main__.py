"""Start the gateway: `python -m services.gateway` serves; `... token` prints a bearer JWT;
`... members export|erase --tenant T MEMBER` exercises a member's rights.

uvicorn handles SIGTERM and SIGINT: it stops accepting, lets in-flight requests finish within
the grace period, then runs the lifespan's shutdown (Kafka producer, Redis, gRPC channels).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import uvicorn
from rich.console import Console

from services.common.logs import configure_logging
from services.common.member_rights import ErasureRequest, InvalidMember, MemberNotFound, MemberRef
from services.common.telemetry import setup_tracing
from services.gateway.app import create_app
from services.gateway.security import SCOPES, issue_token, new_api_key
from services.gateway.settings import ApiKey, GatewaySettings

if TYPE_CHECKING:
    from services.gateway.members import MemberRightsBackend

T = TypeVar("T")
err_console = Console(stderr=True)
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


members_cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Members' rights (Kenya Data Protection Act 2019): export or erase one member.",
)
cli.add_typer(members_cli, name="members")


def _member_rights(
    tenant: str, member_id: str, work: Callable[[MemberRightsBackend, MemberRef], Awaitable[T]]
) -> T:
    from services.gateway.members import open_member_rights

    settings = GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, stream=sys.stderr)
    key = settings.member_pseudonym_key.get_secret_value().encode()

    async def run() -> T:
        backend = await open_member_rights(settings.infra, key)
        try:
            return await work(backend, backend.member(tenant, member_id))
        finally:
            await backend.close()

    try:
        return asyncio.run(run())
    except InvalidMember as exc:
        raise typer.BadParameter(str(exc)) from None
    except MemberNotFound as exc:
        err_console.print(f"[red]not found[/red]: {exc}")
        raise typer.Exit(4) from None


TenantOption = Annotated[str, typer.Option(help="the SACCO or partner the member belongs to")]
MemberArgument = Annotated[str, typer.Argument(help="the member's id in that tenant")]


async def _export_document(backend: MemberRightsBackend, member: MemberRef) -> dict[str, Any]:
    return (await backend.rights.export(member)).document()


@members_cli.command("export")
def export_member(
    member_id: MemberArgument,
    tenant: TenantOption,
    output: Annotated[
        Path | None, typer.Option(help="write the JSON document here instead of stdout")
    ] = None,
) -> None:
    """Everything Alama holds on the member, across every store, as one JSON document."""
    document = _member_rights(tenant, member_id, _export_document)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n")
        err_console.print(f"wrote {output}")


@members_cli.command("erase")
def erase_member(
    member_id: MemberArgument,
    tenant: TenantOption,
    requested_by: Annotated[
        str | None, typer.Option(help="who asks; recorded in the audit chain (default: OS user)")
    ] = None,
) -> None:
    """Erase the member everywhere (crypto-shredding the audit chain's personal data) and
    record the request in the audit chain; prints the receipt as JSON."""
    who = f"cli:{requested_by or getpass.getuser()}"

    async def erase(backend: MemberRightsBackend, member: MemberRef) -> dict[str, Any]:
        receipt = await backend.rights.erase(ErasureRequest.new(member, requested_by=who))
        return receipt.document()

    receipt = _member_rights(tenant, member_id, erase)
    sys.stdout.write(json.dumps(receipt, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    cli()
