"""`python -m member_rights export|erase --tenant T MEMBER`: a member's rights from an operator's
shell (Kenya Data Protection Act 2019). Settings come from the same environment the services read
(ALAMA_*, ALAMA_AUDIT_* for the audit owner login and MAC key, ALAMA_MEMBER_PSEUDONYM_KEY)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from rich.console import Console

from member_rights.wiring import (
    MemberRightsBackend,
    file_outcomes_under_members,
    open_member_rights,
)
from services.common.logs import configure_logging
from services.common.member_rights import (
    ErasureRequest,
    InvalidMember,
    MemberNotFound,
    MemberRef,
    pseudonym_key_field,
)
from services.common.settings import ServiceSettings

T = TypeVar("T")
err_console = Console(stderr=True)


class MemberRightsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALAMA_MEMBER_RIGHTS_", extra="ignore")

    service_name: str = "member-rights"
    member_pseudonym_key: SecretStr = pseudonym_key_field()


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Members' rights (Kenya Data Protection Act 2019): export or erase one member.",
)


def _member_rights(
    tenant: str, member_id: str, work: Callable[[MemberRightsBackend, MemberRef], Awaitable[T]]
) -> T:
    settings = MemberRightsSettings()
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


@app.command("export")
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


@app.command("erase")
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


@app.command("file-outcomes")
def file_outcomes() -> None:
    """Once after upgrading to a version whose outcomes service files rows under members'
    pseudonyms: file the rows it stored before, so an export or erasure finds them."""
    settings = MemberRightsSettings()
    configure_logging(settings.service_name, settings.log_level, stream=sys.stderr)
    key = settings.member_pseudonym_key.get_secret_value().encode()
    filed = asyncio.run(file_outcomes_under_members(settings.infra, key))
    err_console.print(f"filed {filed:,} rows of the outcomes service under their members")


if __name__ == "__main__":
    app()
