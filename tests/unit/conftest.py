"""Unit-test set-up: the tabular CLI runs once per input for the tests that read what it wrote.

(The compiled-module cache every process shares is set by the Makefile: PYTHONPYCACHEPREFIX.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from click.testing import Result

    from training.tabular import TabularRun


@dataclass(frozen=True)
class TabularCliRun:
    """What one `python -m training tabular` printed and wrote, and the run it wrote it from."""

    result: Result
    out: Path
    run: TabularRun


#: `python -m training tabular` on a table: (csv, target, positive label, protected columns,
#: folds) -> what it printed and wrote, and the run it wrote it from
TabularCli = Callable[[Path, str, str, Sequence[str], int], TabularCliRun]


@pytest.fixture(scope="session")
def tabular_cli(tmp_path_factory: pytest.TempPathFactory) -> TabularCli:
    """Runs the CLI once per distinct input for the whole session: the training tests check what
    it reports and writes, the scoring tests serve the bundle of the same German credit run (the
    same as `run_tabular` with the same folds, seed and cost, as it is returned here)."""
    from typer.testing import CliRunner

    from training import tabular
    from training.__main__ import app

    runner = CliRunner()
    runs: dict[tuple[str, ...], TabularCliRun] = {}

    def run(
        csv_path: Path, target: str, positive: str, protected: Sequence[str], folds: int
    ) -> TabularCliRun:
        digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
        key = (digest, target, positive, *protected, str(folds))
        if key not in runs:
            out = tmp_path_factory.mktemp("tabular_cli") / "out"
            args = ["tabular", "--csv", str(csv_path), "--target", target, "--positive", positive]
            for column in protected:
                args += ["--protected", column]
            made: list[TabularRun] = []
            run_command = tabular.run_command

            def keep(*a: Any, **kw: Any) -> tuple[Path, TabularRun]:
                written, tabular_run = run_command(*a, **kw)
                made.append(tabular_run)
                return written, tabular_run

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(tabular, "run_command", keep)
                result = runner.invoke(app, [*args, "--folds", str(folds), "--out", str(out)])
            assert result.exit_code == 0, result.output
            runs[key] = TabularCliRun(result, out, made[0])
        return runs[key]

    return run
