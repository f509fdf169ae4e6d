"""`python -m services.gateway token` prints a token the gateway accepts."""

from __future__ import annotations

from typer.testing import CliRunner

from services.gateway.__main__ import app as cli
from services.gateway.security import authenticate_api_key, decode_token
from services.gateway.settings import ApiKey, GatewaySettings


def test_token_prints_a_jwt_with_the_requested_scopes() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "token",
            "--subject",
            "officer-1",
            "--tenant",
            "sacco-a",
            "--scope",
            "score:write",
            "--scope",
            "decisions:read",
        ],
    )
    assert result.exit_code == 0, result.output
    principal = decode_token(GatewaySettings(), result.output.strip())
    assert principal.subject == "officer-1" and principal.tenant == "sacco-a"
    assert principal.scopes == {"score:write", "decisions:read"}


def test_token_refuses_an_unknown_scope() -> None:
    result = CliRunner().invoke(
        cli, ["token", "--subject", "x", "--tenant", "t", "--scope", "root"]
    )
    assert result.exit_code != 0


def test_api_key_prints_a_key_once_and_the_salted_entry_that_accepts_it() -> None:
    result = CliRunner().invoke(
        cli, ["api-key", "--name", "bank", "--tenant", "sacco-b", "--scope", "decisions:read"]
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.output.strip().splitlines())
    key, entry = lines["key"].strip(), ApiKey.model_validate_json(lines["entry"].strip())
    assert key not in lines["entry"]
    settings = GatewaySettings().model_copy(update={"api_keys": [entry]})
    principal = authenticate_api_key(settings, key)
    assert principal.tenant == "sacco-b" and principal.scopes == {"decisions:read"}
