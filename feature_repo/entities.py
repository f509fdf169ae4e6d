"""Feast entities: a SACCO member is the key of every feature.

The `member_id` join key holds the tenant-scoped member key, ``<tenant>/<member id>``
(services.common.members.member_key): two SACCOs' member M-0001 are two entities.
"""

from feast import Entity, ValueType

member = Entity(
    name="member",
    join_keys=["member_id"],
    value_type=ValueType.STRING,
    description="A SACCO's member: <tenant>/<member id from core banking>",
)
