"""Fixtures for integration tests that need a trained model bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import InfraSettings
from tests.integration.feast_projects import feast_project


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

    with feast_project("bundle_test"):
        profile = get_profile("tiny")
        world = generate_world(profile.n_members, profile.seed)
        pipeline.load_into_feast(infra, world, echo=lambda _line: None)
        trained = pipeline.train(infra, profile, world, echo=lambda _line: None)
        root = tmp_path_factory.mktemp("bundles")
        write_bundle(trained, pipeline.evaluate(trained), promote=True, root=root)
    return root / "current"
