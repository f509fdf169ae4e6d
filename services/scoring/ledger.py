"""What scoring has answered, by application id: the first decision for an id stands.

A caller (or a replayed Kafka record) that sends the same application id with the same content
gets that same decision back, never a re-scored one that would share its id and be dropped
downstream as a duplicate; the same id with other content is a conflict (409, or a dead letter
on the Kafka path) naming the decision already made. The decision is claimed here before it is
published and returned, so what a caller is told is exactly what explanation and audit receive.

Two copies in Redis, so that memory does not grow with every decision's ~5 KB of inputs:

- the *standing* entry (content digest + the decision without its inputs, ~0.8 KB), kept
  `ledger_days`: one key per application id within its tenant, written `SET NX` in the same
  transaction as the whole copy, so replicas racing on one application agree on one winner;
- the *whole* decision, which a retry re-publishes: kept until the broker has acknowledged it
  (`settle`), then for the retry window (`retry_seconds`, none by default: deleted at once). A
  decision whose publication never completed (a crash, a broker that did not answer) keeps its
  whole copy as long as the standing entry, so a retry however late still publishes it.

Why no window by default: the gateway asks for the BASIC view, which the standing entry answers
exactly; and Redis reclaims an expired key only when its sampling of keys with a TTL finds it,
which it stops doing while fewer than a tenth of those sampled have expired. Among a ledger's
long-lived standing entries, expired whole copies (8 times their size) piled up: in the 30-minute
soak with a 10-minute window, Redis grew 55 MB a minute after the window had filled, where the
standing entries account for 7.

A retry after the window is answered from the standing entry, marked `recorded`: the broker has
it, so it is not published again (a copy without its inputs would reach explanation as a
different payload under the same id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.scoring.decisions import content_digest, strip_inputs

KEY_PREFIX = "alama:scoring:decided:"
WHOLE_PREFIX = "alama:scoring:whole:"


@dataclass(frozen=True)
class Entry:
    """The content an application id was first decided with, and that decision; `recorded`
    when only the standing copy (without inputs) is left: it is on the broker already."""

    digest: str
    decision: CreditDecision
    recorded: bool = False

    def encode(self) -> bytes:
        return self.digest.encode("ascii") + b"\n" + self.decision.SerializeToString()

    @classmethod
    def decode(cls, raw: bytes, *, recorded: bool = False) -> Entry:
        digest, _, payload = raw.partition(b"\n")
        return cls(digest.decode("ascii"), CreditDecision.FromString(payload), recorded)

    def standing(self) -> Entry:
        decision = CreditDecision()
        decision.CopyFrom(self.decision)
        return Entry(self.digest, strip_inputs(decision), recorded=True)


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

    async def settle(self, keys: Sequence[str]) -> None:
        """These keys' decisions are on the broker: their whole copies need only outlive the
        retry window."""
        ...

    async def close(self) -> None: ...


class RedisLedger:
    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: int,
        retry_seconds: int,
        prefix: str = KEY_PREFIX,
        whole_prefix: str = WHOLE_PREFIX,
    ) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.retry_seconds = min(retry_seconds, ttl_seconds)
        self.prefix = prefix
        self.whole_prefix = whole_prefix

    async def lookup(self, keys: Sequence[str]) -> list[Entry | None]:
        if not keys:
            return []
        raw = await self.redis.mget(
            [self.whole_prefix + k for k in keys] + [self.prefix + k for k in keys]
        )
        return [_entry(w, s) for w, s in zip(raw[: len(keys)], raw[len(keys) :], strict=True)]

    async def claim(
        self, decided: Sequence[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> list[Entry]:
        if not decided:
            return []
        entries = [Entry(content_digest(a), d) for a, d in decided]
        keys = [ledger_key(a) for a, _d in decided]
        # one transaction: the standing and the whole copy of one application are both ours
        # or both another replica's, never one of each
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, entry in zip(keys, entries, strict=True):
                pipe.set(self.prefix + key, entry.standing().encode(), nx=True, ex=self.ttl)
                pipe.set(self.whole_prefix + key, entry.encode(), nx=True, ex=self.ttl)
            claimed = await pipe.execute()
        lost = [i for i, ok in enumerate(claimed[::2]) if not ok]
        if stray := [keys[i] for i in lost if claimed[2 * i + 1]]:
            # its outcome stood already and only the whole copy had gone (a claim that raced
            # past the retry window): the copy we just wrote is not the standing decision's
            await self.redis.delete(*[self.whole_prefix + k for k in stray])
        if lost:
            standing = await self.lookup([keys[i] for i in lost])
            for i, found in zip(lost, standing, strict=True):
                if found is not None:  # expired between the two calls: ours is as good as any
                    entries[i] = found
        return entries

    async def settle(self, keys: Sequence[str]) -> None:
        if not keys or self.retry_seconds >= self.ttl:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                if self.retry_seconds > 0:
                    pipe.expire(self.whole_prefix + key, self.retry_seconds, lt=True)
                else:  # reclaimed now: Redis frees expired keys only as its sampling finds them
                    pipe.delete(self.whole_prefix + key)
            await pipe.execute()

    async def compact(self, *, count: int = 500) -> Compacted:
        """Strip the inputs from standing entries that versions before the two copies wrote
        whole (each kept its ~5 KB of inputs for `ledger_days`), keeping their TTL: a one-off
        step after upgrading. Safe beside running replicas, which never rewrite a standing
        entry (SET NX); a key that expired meanwhile is not made again (XX)."""
        found = rewritten = freed = 0
        async for batch in self._standing_keys(count):
            n, b = await self._compact(batch)
            found, rewritten, freed = found + len(batch), rewritten + n, freed + b
        return Compacted(found, rewritten, freed)

    async def _standing_keys(self, count: int) -> AsyncIterator[list[bytes]]:
        """Every standing entry's key, `count` at a time (SCAN: never all in memory at once)."""
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}*", count=count):
            batch.append(key)
            if len(batch) >= count:
                yield batch
                batch = []
        if batch:
            yield batch

    async def _compact(self, keys: list[bytes]) -> tuple[int, int]:
        rewritten = freed = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, raw in zip(keys, await self.redis.mget(keys), strict=True):
                if raw is None:
                    continue
                slim = Entry.decode(raw).standing().encode()
                if len(slim) < len(raw):
                    pipe.set(key, slim, xx=True, keepttl=True)
                    rewritten, freed = rewritten + 1, freed + len(raw) - len(slim)
            await pipe.execute()
        return rewritten, freed

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True)
class Compacted:
    """What `RedisLedger.compact` did: standing entries seen, rewritten without their inputs,
    and the bytes of values that freed."""

    entries: int
    rewritten: int
    freed_bytes: int


def _entry(whole: bytes | None, standing: bytes | None) -> Entry | None:
    if whole is not None:
        return Entry.decode(whole)
    if standing is not None:
        return Entry.decode(standing, recorded=True)
    return None


class MemoryLedger:
    """The same rules in one process's memory, every whole copy kept: for tests and
    single-process tools."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.settled: list[str] = []

    async def lookup(self, keys: Sequence[str]) -> list[Entry | None]:
        return [self.entries.get(k) for k in keys]

    async def claim(
        self, decided: Sequence[tuple[LoanApplicationSubmitted, CreditDecision]]
    ) -> list[Entry]:
        return [
            self.entries.setdefault(ledger_key(a), Entry(content_digest(a), d)) for a, d in decided
        ]

    async def settle(self, keys: Sequence[str]) -> None:
        self.settled.extend(keys)

    async def close(self) -> None:
        pass
