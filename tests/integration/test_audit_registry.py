"""The model registry's changes reach the audit chain on the real broker and PostgreSQL: the
training CLI's publisher sends a promotion and a rollback (acknowledged, through its outbox),
the audit consumer chains both with who asked, the chain verifies, a change sent again (an outbox
resend) is not chained twice, and `python -m services.audit registry` lists them verified.

Each test uses its own audit schema (the `audit` fixture of test_audit.py) and a scratch topic,
so it sees no one else's changes."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.audit.chain import REGISTRY_PAYLOAD_TYPE
from services.audit.consumer import build_consumer
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from tests.integration.test_audit import AuditFixture, audit, cli, wait_for
from training.gate import Check, Threshold
from training.registry import PROMOTED, ROLLED_BACK, RegistryChange
from training.registry_events import (
    BrokerUnreachable,
    Outbox,
    RegistryPublisher,
    RegistrySettings,
    record_or_keep,
    registry_event,
)

pytestmark = pytest.mark.integration
__all__ = ["audit"]  # the fixture, shared with test_audit.py


def _change(action: str, by: str, version: str, replaced: str) -> RegistryChange:
    checks = (
        (
            Check(
                "equal_opportunity[gender]",
                True,
                0.012,
                Threshold(high=0.05, high_exclusive=True),
                (0.004, 0.03),
                "",
            ),
        )
        if action == PROMOTED
        else ()
    )
    return RegistryChange(
        action=action,
        requested_by=by,
        model_name="alama-credit-ensemble",
        model_version=version,
        bundle_version=f"quick-{version}",
        replaced_version=replaced,
        replaced_bundle_version=f"quick-{replaced}",
        reason="the gate held" if action == PROMOTED else "rollback",
        at=datetime.now(UTC).isoformat(),
        trigger="drift" if action == PROMOTED else "",
        checks=checks,
    )


async def test_promotion_and_rollback_are_chained_once_with_who_asked(
    audit: AuditFixture, infra: InfraSettings, tmp_path: Path
) -> None:
    topic = TopicSpec(f"test.registry.{uuid.uuid4().hex[:12]}", partitions=1, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [topic])
    settings = RegistrySettings(
        topic=topic.name, outbox=tmp_path / "outbox.jsonl", kafka_timeout_seconds=20, infra=infra
    )
    promoted = _change(PROMOTED, "risk-committee@sacco", "8", "7")
    rolled_back = _change(ROLLED_BACK, "ops-on-call", "7", "8")
    async with RegistryPublisher(settings) as publisher:
        assert await publisher.record(registry_event(promoted, {"held_out": 5000})) == 1
        assert await publisher.record(registry_event(rolled_back)) == 1
    assert Outbox(settings.outbox).pending() == []  # acknowledged, so nothing waits

    consumer = build_consumer(audit.settings, audit.store, {topic.name: (ModelRegistryChanged,)})
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    store = audit.store
    try:

        async def both_chained() -> bool:
            return await store.count() == 2

        await wait_for(both_chained)
        # sent again (an outbox resend after a lost acknowledgement), then one more change that
        # proves the resend was read before it
        resend = Outbox(settings.outbox)
        resend.add(registry_event(promoted, {"held_out": 5000}))
        later = _change(PROMOTED, "risk-committee@sacco", "9", "7")
        recorded = await record_or_keep(registry_event(later), settings)
        assert recorded.acknowledged and recorded.pending == 0

        async def later_chained() -> bool:
            return any(
                json.loads(r.row.payload)["model_version"] == "9"
                for r in await store.registry_changes()
            )

        await wait_for(later_chained)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, timeout=30)

    records = await store.registry_changes()
    assert [r.row.event_id for r in records] == [
        promoted.change_id,
        rolled_back.change_id,
        later.change_id,
    ]  # the resend added nothing
    assert await store.count() == 3
    first, second, _ = (json.loads(r.row.payload) for r in records)
    assert (first["action"], first["requested_by"], first["model_version"]) == (
        "REGISTRY_ACTION_PROMOTED",
        "risk-committee@sacco",
        "8",
    )
    assert first["replaced_model_version"] == "7" and first["trigger"] == "drift"
    assert first["checks"][0]["name"] == "equal_opportunity[gender]"
    assert first["checks"][0]["rows"] == 5000
    assert (second["action"], second["requested_by"], second["model_version"]) == (
        "REGISTRY_ACTION_ROLLED_BACK",
        "ops-on-call",
        "7",
    )
    # system records: no tenant, no application, so no tenant's trail or lookup holds them
    assert all(r.row.application_id == "" and "tenant_id" not in r.row.payload for r in records)
    assert all(r.row.payload_type == REGISTRY_PAYLOAD_TYPE for r in records)
    assert all(r.verified and not r.next_problem for r in records)
    verified = await store.verify()
    assert verified.ok and verified.rows_checked == 3, verified

    code, output = await cli(audit, "registry")
    assert code == 0, output
    assert "3 model registry change(s)" in output
    assert (
        "promoted version 8 (bundle quick-8) replacing 7, asked by risk-committee@sacco" in output
    )
    assert "rolled_back version 7 (bundle quick-7) replacing 8, asked by ops-on-call" in output
    assert output.count("verified") == 3 and "NOT VERIFIED" not in output


async def test_an_unreachable_broker_keeps_the_change_in_the_outbox(tmp_path: Path) -> None:
    """A change made while the broker is away is not lost: it stays until a publisher that
    reaches a broker sends it."""
    settings = RegistrySettings(
        outbox=tmp_path / "outbox.jsonl",
        kafka_timeout_seconds=2,
        infra=InfraSettings(kafka_bootstrap="127.0.0.1:1"),
    )
    change = _change(ROLLED_BACK, "ops", "3", "4")
    recorded = await record_or_keep(registry_event(change), settings)
    assert not recorded.acknowledged and recorded.pending == 1
    assert "cannot be reached" in recorded.problem
    with pytest.raises(BrokerUnreachable):
        async with RegistryPublisher(settings):
            pass
    assert [e.event_id for e in Outbox(settings.outbox).pending()] == [change.change_id]


async def test_a_rewritten_registry_record_is_caught(
    audit: AuditFixture, infra: InfraSettings, tmp_path: Path
) -> None:
    """Whoever rewrites who asked for a promotion (as the tables' owner, trigger off) is named
    by the listing and by the chain's verification."""
    topic = TopicSpec(f"test.registry.{uuid.uuid4().hex[:12]}", partitions=1, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [topic])
    settings = RegistrySettings(
        topic=topic.name, outbox=tmp_path / "outbox.jsonl", kafka_timeout_seconds=20, infra=infra
    )
    promoted = _change(PROMOTED, "risk-committee@sacco", "8", "7")
    assert (await record_or_keep(registry_event(promoted), settings)).acknowledged
    consumer = build_consumer(audit.settings, audit.store, {topic.name: (ModelRegistryChanged,)})
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:

        async def chained() -> bool:
            return await audit.store.count() == 1

        await wait_for(chained)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, timeout=30)
    events = audit.store.events
    async with audit.owner_pool.acquire() as conn:
        await conn.execute(f"ALTER TABLE {events} DISABLE TRIGGER events_append_only")
        await conn.execute(
            f"UPDATE {events} SET payload = replace(payload, 'risk-committee@sacco', 'intern')"
        )
        await conn.execute(f"ALTER TABLE {events} ENABLE TRIGGER events_append_only")
    (record,) = await audit.store.registry_changes()
    assert not record.verified and "altered" in record.problem
    assert not (await audit.store.verify()).ok
    code, output = await cli(audit, "registry")
    assert code == 1 and "NOT VERIFIED" in output and "altered" in output
