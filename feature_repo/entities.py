"""Feast entities: a SACCO member is the key of every feature."""

from feast import Entity, ValueType

member = Entity(
    name="member",
    join_keys=["member_id"],
    value_type=ValueType.STRING,
    description="A SACCO member (pseudonymous member id from core banking)",
)
