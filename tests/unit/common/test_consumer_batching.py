"""Consumers off the synchronous path fetch in batches; the defaults answer every record alone."""

from __future__ import annotations

import asyncio

from services.audit.settings import AuditSettings
from services.common.kafka import EventConsumer
from services.common.settings import ServiceSettings
from services.console.settings import ConsoleSettings
from services.explanation.settings import ExplanationSettings
from services.outcomes.settings import OutcomesSettings
from services.scoring.settings import ScoringSettings


def _fetch(settings: ServiceSettings) -> tuple[int, int]:
    async def build() -> tuple[int, int]:
        consumer = EventConsumer(settings, group_id="g", routes={})
        fetch = consumer.consumer._fetch_min_bytes, consumer.consumer._fetch_max_wait_ms
        await consumer.close()  # never started: nothing left open
        return fetch

    return asyncio.run(build())


def test_downstream_consumers_wait_for_a_batch_and_the_rest_keep_aiokafkas_defaults() -> None:
    assert _fetch(AuditSettings(dev_mode=True)) == (65536, 150)
    assert _fetch(ExplanationSettings(dev_mode=True)) == (65536, 150)
    assert _fetch(ConsoleSettings(dev_mode=True)) == (65536, 200)
    assert _fetch(OutcomesSettings(dev_mode=True)) == (65536, 200)
    assert _fetch(ScoringSettings(dev_mode=True)) == (16384, 50)
    assert _fetch(ServiceSettings()) == (1, 500)


def test_the_batching_is_a_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALAMA_AUDIT_CONSUMER_FETCH_MAX_WAIT_MS", "5")
    monkeypatch.setenv("ALAMA_AUDIT_CONSUMER_FETCH_MIN_BYTES", "1")
    assert _fetch(AuditSettings(dev_mode=True)) == (1, 5)
