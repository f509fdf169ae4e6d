"""Offline tables (PostgreSQL schema `feast`) and the push sources for streaming updates.

The training CLI writes the offline tables; the feature_store service pushes online updates.
"""

import os

from feast import PushSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)

# A separate schema (and Feast project) lets tests load their own world beside the real one.
OFFLINE_SCHEMA = os.environ.get("ALAMA_FEAST_OFFLINE_SCHEMA", "feast")

member_profile_source = PostgreSQLSource(
    name="member_profile_source",
    query=f"SELECT * FROM {OFFLINE_SCHEMA}.member_profile",
    timestamp_field="event_timestamp",
)
mobile_money_source = PostgreSQLSource(
    name="mobile_money_source",
    query=f"SELECT * FROM {OFFLINE_SCHEMA}.mobile_money_features",
    timestamp_field="event_timestamp",
)
repayment_source = PostgreSQLSource(
    name="repayment_source",
    query=f"SELECT * FROM {OFFLINE_SCHEMA}.repayment_features",
    timestamp_field="event_timestamp",
)
mobile_money_push = PushSource(name="mobile_money_push", batch_source=mobile_money_source)
repayment_push = PushSource(name="repayment_push", batch_source=repayment_source)
bureau_source = PostgreSQLSource(
    name="bureau_source",
    query=f"SELECT * FROM {OFFLINE_SCHEMA}.bureau_features",
    timestamp_field="event_timestamp",
)
