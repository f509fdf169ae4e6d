"""Shared fixtures: the real local servers, started or reused through infra.local.

A missing or broken server fails the run with the reason and the log to read; it never skips.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from infra import local
from services.common.settings import InfraSettings, ServiceSettings
from services.common.topics import TopicSpec, ensure_topics

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(scope="session")
def infra() -> InfraSettings:
    try:
        local.up(echo=lambda _line: None)
    except local.InfraError as exc:
        pytest.fail(f"local infrastructure is not available: {exc}", pytrace=False)
    return InfraSettings()


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
