"""The explanation service's part of a member's data: its stored decisions and explanations,
as `services.common.member_rights` holders read and erase them (the CLI's direct path, and the
service's answer to an export request)."""

from __future__ import annotations

from typing import Any

from services.common.member_rights import MemberRef
from services.common.proto_json import message_to_dict
from services.explanation.store import DecisionStore


def _message(message: Any) -> dict[str, Any]:
    return message_to_dict(message)


class DecisionsHolder:
    """Decisions and their explanations (the explanation service's store)."""

    name = "decisions"
    tenant_scoped = True

    def __init__(self, store: DecisionStore) -> None:
        self.store = store

    async def holds(self, member: MemberRef) -> bool:
        return await self.store.holds_member(member.tenant, member.member_id)

    async def export(self, member: MemberRef) -> list[dict[str, Any]]:
        pairs = await self.store.member_decisions(member.tenant, member.member_id)
        return [
            {"decision": _message(d), "explanation": None if e is None else _message(e)}
            for d, e in pairs
        ]

    async def erase(self, member: MemberRef) -> int:
        return await self.store.erase_member(member.tenant, member.member_id)
