"""The Faust app factory for stream processors (feature_store, drift).

Record values stay raw bytes: agents decode them with `services.common.envelope.decode`, so
Faust agents and plain aiokafka consumers read the same envelopes the same way.
"""

from __future__ import annotations

from typing import Any

import faust

from services.common.settings import ServiceSettings


def create_faust_app(settings: ServiceSettings, *, app_id: str, **overrides: Any) -> faust.App:
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.infra.kafka_bootstrap}",
        "store": "memory://",
        "value_serializer": "raw",
        "key_serializer": "raw",
        "topic_partitions": 6,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_every": 500,
        "broker_commit_interval": 1.0,
        "web_enabled": False,
        "producer_acks": -1,
    }
    return faust.App(app_id, **(options | overrides))
