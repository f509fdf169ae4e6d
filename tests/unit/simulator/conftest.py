"""A small synthetic world shared by the simulator's unit tests."""

from __future__ import annotations

import pytest

from training.world import World, generate_world


@pytest.fixture(scope="session")
def small_world() -> World:
    return generate_world(300, seed=5)
