"""What scoring has answered, by application id: the first decision for an id stands.

A caller (or a replayed Kafka record) that sends the same application id with the same content
gets that same decision back, never a re-scored one that would share its id and be dropped
downstream as a duplicate; the same id with other content is a conflict (409, or a dead letter
on the Kafka path) naming the decision already made. Redis holds the entries (one key per
application id within its tenant, `SET NX`, so replicas racing on one application agree on one
winner) for
`ledger_days`; the decision is claimed here before it is published and returned, so what a
caller is told is exactly what explanation and audit receive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.scoring.decisions import content_digest

KEY_PREFIX = "alama:scoring:decided:"


@dataclass(frozen=True)
class Entry:
    """The content an application id was first decided with, and that decision."""

    digest: str
    decision: CreditDecision

    def encode(self) -> bytes:
        return self.digest.encode("ascii") + b"\n" + self.decision.SerializeToString()

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        digest, _, payload = raw.partition(b"\n")
        return cls(digest.decode("ascii"), CreditDecision.FromString(payload))


def ledger_key(application: LoanApplicationSubmitted) -> str:
    """Application ids are the tenant's own: two SACCOs may both send `A-1`."""
    return f"{application.tenant_id}/{application.application_id}"


class Ledger(Protocol):
    async def lookup(self, keys: Sequence[str]) -> list[Entry | None]:
        """The entry of each `ledger_key`, None where it was never decided."""
        ...

    async def claim(
        self, decided: Sequence[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> list[Entry]:
        """Record each decision unless its application id already has one (an earlier call,
        another replica, or an earlier item of this batch); return the entry that stands."""
        ...

    async def close(self) -> None: ...


class RedisLedger:
    def __init__(self, redis: Redis, *, ttl_seconds: int, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.prefix = prefix

    async def lookup(self, keys: Sequence[str]) -> list[Entry | None]:
        if not keys:
            return []
        raw = await self.redis.mget([self.prefix + k for k in keys])
        return [None if r is None else Entry.decode(r) for r in raw]

    async def claim(
        self, decided: Sequence[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> list[Entry]:
        if not decided:
            return []
        entries = [Entry(content_digest(a), d) for a, d in decided]
        keys = [self.prefix + ledger_key(a) for a, _d in decided]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, entry in zip(keys, entries, strict=True):
                pipe.set(key, entry.encode(), nx=True, ex=self.ttl)
            claimed = await pipe.execute()
        lost = [i for i, ok in enumerate(claimed) if not ok]
        if lost:
            standing = await self.redis.mget([keys[i] for i in lost])
            for i, raw in zip(lost, standing, strict=True):
                if raw is not None:  # expired between the two calls: ours is as good as any
                    entries[i] = Entry.decode(raw)
        return entries

    async def close(self) -> None:
        await self.redis.aclose()


class MemoryLedger:
    """The same rules in one process's memory: for tests and single-process tools."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    async def lookup(self, keys: Sequence[str]) -> list[Entry | None]:
        return [self.entries.get(k) for k in keys]

    async def claim(
        self, decided: Sequence[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> list[Entry]:
        return [
            self.entries.setdefault(ledger_key(a), Entry(content_digest(a), d)) for a, d in decided
        ]

    async def close(self) -> None:
        pass
