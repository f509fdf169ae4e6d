"""Development mode reaches what runs locally and nothing else: the make targets turn it on and
the supervisor's services inherit it; compose and the charts never set it (their own tests)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import supervisor
from services.common.settings import DEV_MODE_VARIABLE

REPO = Path(__file__).resolve().parents[3]


def test_make_targets_run_in_development_mode() -> None:
    unset = {DEV_MODE_VARIABLE, "MAKEFLAGS", "MAKELEVEL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    probe = f"dev-mode-probe: ; @echo $${DEV_MODE_VARIABLE}"
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", probe, "dev-mode-probe"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "1"
    explicit = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", probe, "dev-mode-probe"],
        cwd=REPO,
        env=env | {DEV_MODE_VARIABLE: "0"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert explicit.stdout.strip() == "0", "a developer can still try the production rule"


@dataclass
class ExitedProcess:
    pid: int


def test_the_supervisor_passes_development_mode_to_its_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, str]] = []
    done = subprocess.Popen(["true"])  # its pid is gone: the "service" exits at once
    done.wait()

    def popen(command: list[str], **kwargs: Any) -> ExitedProcess:
        started.append(kwargs["env"])
        return ExitedProcess(done.pid)

    monkeypatch.setenv("ALAMA_RUN_DIR", str(tmp_path))
    monkeypatch.setenv(DEV_MODE_VARIABLE, "1")
    monkeypatch.setattr(supervisor.subprocess, "Popen", popen)
    with pytest.raises(supervisor.SupervisorError, match="exited during start-up"):
        supervisor.start(supervisor.BY_NAME["gateway"], timeout=5)
    assert started[0][DEV_MODE_VARIABLE] == "1"
