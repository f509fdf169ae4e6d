"""One way to start every service: `python -m services.<name>` runs it, `python -m
services.<name> run` says the same explicitly, and a service's tools (audit's `verify`, drift's
`report`, the gateway's `token`, ...) are sub-commands beside `run`.

Each `services/<name>/__main__.py` builds its command line with `service_cli(run, help=...)`
and adds its tools with `@app.command()`; Dockerfiles, charts, compose and the supervisor all
start the bare module.
"""

from __future__ import annotations

from collections.abc import Callable

import typer


def service_cli(run: Callable[[], None], *, help: str | None = None) -> typer.Typer:
    """A service's typer app: `run()` when no command is given, and as the `run` command (its
    help is `run`'s docstring)."""
    app = typer.Typer(add_completion=False, help=help)

    @app.callback(invoke_without_command=True)
    def _default(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            run()

    app.command("run")(run)
    return app
