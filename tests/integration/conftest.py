"""Fixtures for integration tests that need a trained model bundle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.settings import InfraSettings

BUNDLE_FEAST = {
    "ALAMA_FEAST_PROJECT": "alama_bundle_test",
    "ALAMA_FEAST_OFFLINE_SCHEMA": "feast_bundle_test",
}


@pytest.fixture(scope="session")
def tiny_bundle(infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-profile model trained once per run and promoted in a temporary bundle folder.

    Built through the real pipeline (world, Feast in its own project, training, export), so a
    fresh clone needs no `make train` before the tests.
    """
    from training import pipeline
    from training.export import write_bundle
    from training.profiles import get_profile
    from training.world import generate_world

    saved = {k: os.environ.get(k) for k in BUNDLE_FEAST}
    os.environ.update(BUNDLE_FEAST)
    try:
        profile = get_profile("tiny")
        world = generate_world(profile.n_members, profile.seed)
        pipeline.load_into_feast(infra, world, echo=lambda _line: None)
        trained = pipeline.train(infra, profile, world, echo=lambda _line: None)
        root = tmp_path_factory.mktemp("bundles")
        write_bundle(trained, pipeline.evaluate(trained), promote=True, root=root)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return root / "current"
