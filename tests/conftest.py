"""Shared fixtures: the real local servers, started or reused through infra.local.

The tests run on an instance of their own (the run folder `.run-test/` and every port shifted by
11,000, as `make test` sets them), so nothing a test writes reaches the demo or a developer's
running system. A missing or broken server fails the run with the reason and the log to read; it
never skips.
Tests run in development mode (their secrets are short or the public defaults), as do the service
processes they start, which inherit this environment; a test of the refusal turns it off.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# before anything reads its settings: the test instance's ports and run folder
os.environ.setdefault("ALAMA_PORT_OFFSET", "11000")
os.environ.setdefault("ALAMA_RUN_DIR", str(Path(__file__).resolve().parents[1] / ".run-test"))

from infra import local
from services.common.settings import InfraSettings, ServiceSettings
from services.common.topics import TopicSpec, ensure_topics

os.environ["ALAMA_DEV_MODE"] = "1"

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from training.contract import LoanBook
    from training.world import World


@pytest.fixture(scope="session")
def infra() -> InfraSettings:
    try:
        local.up(echo=lambda _line: None)
    except local.InfraError as exc:
        pytest.fail(f"local infrastructure is not available: {exc}", pytrace=False)
    return InfraSettings()


@dataclass(frozen=True)
class TinyModel:
    """A tiny world loaded into its own Feast project and a model trained and promoted on it."""

    world: World
    book: LoanBook  # the world's loan book, what training read and the simulator replays
    bundle: Path  # the promoted `current` link; its parent is the bundle root
    feast_env: dict[str, str]  # what puts a process (a service under test) in that project
    trained: Any = None  # training.pipeline.TrainedModels: what registering it in MLflow logs
    metrics: dict[str, Any] | None = None  # its evaluation, as `make train` logs it


@pytest.fixture(scope="session")
def tiny_model(infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Built once per run through the real pipeline (world, Feast, training, export), so a fresh
    clone needs no `make train` before the tests."""
    return trained_model(infra, tmp_path_factory, "tiny", "bundle_test")


def trained_model(
    infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory, profile_name: str, project: str
) -> TinyModel:
    """A profile's world loaded into its own Feast project and a model trained and promoted
    on it, in a fresh bundle root."""
    from tests.integration.feast_projects import feast_env, feast_project
    from training import pipeline
    from training.export import write_bundle
    from training.profiles import get_profile
    from training.sources.synthetic import loan_book_from_world
    from training.world import generate_world

    with feast_project(project):
        profile = get_profile(profile_name)
        world = generate_world(profile.n_members, profile.seed)
        pipeline.load_into_feast(infra, loan_book_from_world(world), echo=lambda _line: None)
        trained = pipeline.train(
            infra, profile, loan_book_from_world(world), echo=lambda _line: None
        )
        root = tmp_path_factory.mktemp("bundles")
        metrics = pipeline.evaluate(trained)
        write_bundle(trained, metrics, promote=True, root=root)
    return TinyModel(
        world=world,
        book=loan_book_from_world(world),  # its own copy: training never touches what is replayed
        bundle=root / "current",
        feast_env=feast_env(project),
        trained=trained,
        metrics=metrics,
    )


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model: TinyModel) -> Path:
    """The tiny model's promoted bundle (`current` link)."""
    return tiny_model.bundle


@pytest.fixture(scope="session")
def service_settings(infra: InfraSettings) -> ServiceSettings:
    return ServiceSettings(service_name="alama-tests", infra=infra)


@pytest.fixture
async def scratch_topic(infra: InfraSettings) -> AsyncIterator[TopicSpec]:
    """A fresh consumed topic (with its dead-letter twin) so tests never see each other's data."""
    spec = TopicSpec(f"test.{uuid.uuid4().hex[:12]}", partitions=3, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [spec])
    yield spec


@pytest.fixture(scope="session")
def spans(service_settings: ServiceSettings) -> InMemorySpanExporter:
    """Every span the process finishes, for asserting on trace propagation."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from services.common.telemetry import setup_tracing

    exporter = InMemorySpanExporter()
    setup_tracing(service_settings, exporter=exporter)
    return exporter
