"""services.common.cli: the bare module runs a service, `run` does the same, tools sit beside."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from services.common.cli import service_cli


def _app(calls: list[str]) -> typer.Typer:
    def run() -> None:
        """Run the service."""
        calls.append("run")

    app = service_cli(run, help="A service.")

    @app.command()
    def tool() -> None:
        """A maintenance tool."""
        calls.append("tool")

    return app


def test_no_command_runs_the_service() -> None:
    calls: list[str] = []
    result = CliRunner().invoke(_app(calls), [])
    assert result.exit_code == 0, result.output
    assert calls == ["run"]


def test_run_runs_the_service_once() -> None:
    calls: list[str] = []
    result = CliRunner().invoke(_app(calls), ["run"])
    assert result.exit_code == 0, result.output
    assert calls == ["run"]


def test_a_tool_runs_without_the_service() -> None:
    calls: list[str] = []
    result = CliRunner().invoke(_app(calls), ["tool"])
    assert result.exit_code == 0, result.output
    assert calls == ["tool"]


def test_help_lists_run_and_the_tools() -> None:
    calls: list[str] = []
    result = CliRunner().invoke(_app(calls), ["--help"])
    assert result.exit_code == 0, result.output
    assert "run" in result.output and "Run the service." in result.output
    assert "tool" in result.output and calls == []
