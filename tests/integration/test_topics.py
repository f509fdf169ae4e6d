"""The declarative topic list against the real broker."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, all_topics, ensure_topics

pytestmark = pytest.mark.integration


async def _describe(infra: InfraSettings, names: list[str]) -> tuple[dict[str, int], dict]:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics(names)
        partitions = {t["topic"]: len(t["partitions"]) for t in topics if t["error_code"] == 0}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
        configs = {
            name: {e[0]: e[1] for e in entries}
            for r in responses
            for _e, _m, _t, name, entries in r.resources
        }
    finally:
        await admin.close()
    return partitions, configs


async def test_every_declared_topic_exists_as_declared(infra: InfraSettings) -> None:
    wanted = all_topics()
    partitions, configs = await _describe(infra, [t.name for t in wanted])
    for spec in wanted:
        assert partitions.get(spec.name) == spec.partitions, spec.name
        for key, value in spec.config.items():
            assert configs[spec.name][key] == value, (spec.name, key)


async def test_ensure_topics_is_idempotent(infra: InfraSettings) -> None:
    assert await ensure_topics(infra.kafka_bootstrap) == []


async def test_ensure_topics_repairs_drift_without_losing_the_topic(infra: InfraSettings) -> None:
    spec = TopicSpec("test.drift-repair", partitions=2, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [spec])
    grown = TopicSpec(spec.name, partitions=4, retention_days=3)
    changes = {(c.topic, c.action) for c in await ensure_topics(infra.kafka_bootstrap, [grown])}
    assert (spec.name, "partitions") in changes
    assert (spec.name, "config") in changes
    partitions, configs = await _describe(infra, [spec.name])
    assert partitions[spec.name] == 4
    assert configs[spec.name]["retention.ms"] == grown.config["retention.ms"]
    # put it back for the next run
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([spec.name, spec.dead_letter.name])
    finally:
        await admin.close()
