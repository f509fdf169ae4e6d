"""A supervised service process imports only what its image installs: no PyTorch (the images
leave the training-only packages out), while its own children (the retrainer's training job)
and the test process keep them. It runs optimised, as the images do, so Feast's classes are not
recompiled with typeguard's run-time checks at import (seconds of every service start)."""

from __future__ import annotations

import json
import subprocess
import sys

from infra.supervisor import BY_NAME, SERVICES
from services.common.packages import ENV, TRAINING_ONLY_MODULES

PROBE = """
import json, os, subprocess, sys
import services  # what `python -m services.<name>` imports first
outcome = {}
try:
    import torch  # noqa: F401
    outcome["torch"] = "imported"
except ModuleNotFoundError as exc:
    outcome["torch"] = str(exc)
import feast.torch_wrapper as wrapper  # Feast treats torch as optional: it carries on without
outcome["feast_torch"] = wrapper.TORCH_AVAILABLE
import feast
outcome["optimize"] = sys.flags.optimize
outcome["feast_typechecked"] = "typeguard" in feast.FeatureView.__init__.__code__.co_names
outcome["env_left"] = os.environ.get("ENV_NAME")
child = "import importlib.util as u; print(u.find_spec('torch') is not None)"
outcome["child_finds_torch"] = subprocess.run(
    [sys.executable, "-c", child], capture_output=True, text=True, check=True
).stdout.strip()
print(json.dumps(outcome))
""".replace("ENV_NAME", ENV)


def _probe(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_service_process_runs_without_torch_and_its_children_keep_it() -> None:
    env = BY_NAME["scoring"].process_env({})
    assert env[ENV] == "1"
    outcome = _probe(env)
    assert "training-only package" in str(outcome["torch"])
    assert outcome["feast_torch"] is False
    assert outcome["env_left"] is None
    assert outcome["child_finds_torch"] == "True"
    assert outcome["optimize"] == 1 and outcome["feast_typechecked"] is False


def test_every_service_and_its_image_run_optimised() -> None:
    from pathlib import Path

    assert all(s.process_env({})["PYTHONOPTIMIZE"] == "1" for s in SERVICES)
    root = Path(__file__).parents[3]
    for spec in SERVICES:
        dockerfile = (root / f"services/{spec.service or spec.name}/Dockerfile").read_text()
        assert "PYTHONOPTIMIZE=1" in dockerfile and "compileall -q -j 0 -o 1" in dockerfile


def test_only_the_retrainer_keeps_the_training_packages() -> None:
    kept = {s.name for s in SERVICES if ENV not in s.process_env({})}
    assert kept == {"retrainer"}


def test_the_blocked_modules_are_the_dockerfiles_training_only_packages() -> None:
    from pathlib import Path

    dockerfile = (Path(__file__).parents[3] / "services/scoring/Dockerfile").read_text()
    declared = dockerfile.split('TRAINING_ONLY_PACKAGES="', 1)[1].split('"', 1)[0]
    packages = set(declared.replace("\\", " ").split())
    assert TRAINING_ONLY_MODULES <= packages
