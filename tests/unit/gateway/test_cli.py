"""`python -m services.gateway token` prints a token the gateway accepts."""

from __future__ import annotations

from typer.testing import CliRunner

from services.gateway.__main__ import cli
from services.gateway.security import decode_token
from services.gateway.settings import GatewaySettings


def test_token_prints_a_jwt_with_the_requested_scopes() -> None:
    result = CliRunner().invoke(
        cli,
        ["token", "--subject", "officer-1", "--scope", "score:write", "--scope", "decisions:read"],
    )
    assert result.exit_code == 0, result.output
    principal = decode_token(GatewaySettings(), result.output.strip())
    assert principal.subject == "officer-1"
    assert principal.scopes == {"score:write", "decisions:read"}


def test_token_refuses_an_unknown_scope() -> None:
    result = CliRunner().invoke(cli, ["token", "--subject", "x", "--scope", "root"])
    assert result.exit_code != 0
