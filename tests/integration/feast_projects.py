"""Run a test's Feast work in its own project and offline schema, apart from the demo's data."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


def feast_env(name: str) -> dict[str, str]:
    """The variables that put a process (a test, or a service it starts) in the project."""
    return {"ALAMA_FEAST_PROJECT": f"alama_{name}", "ALAMA_FEAST_OFFLINE_SCHEMA": f"feast_{name}"}


@contextmanager
def feast_project(name: str) -> Iterator[None]:
    """Point Feast at project `alama_<name>` and offline schema `feast_<name>` while inside."""
    with feast_environment(feast_env(name)):
        yield


@contextmanager
def feast_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Apply `feast_env`'s variables (of a project made elsewhere) while inside."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
