"""An application's audit trail as the read contract serves it: its records, each verified with
its neighbours, and how far the chain before them verifies.

Verifying the whole chain on every request would grow with the chain, so the server keeps a
checkpoint: the head a full verification from the chain's start has reached, and when that
verification began. A request verifies on from the checkpoint to the application's last record
(at most `max_rows` rows; the checkpoint advances, so later requests go further) and says which
it did: the chain through the application, or only the application's records. The checkpoint is
dropped when older than `reverify_after`, so the rows before it are checked again. All checks are
the chain's own verifier (`ChainVerifier`), never a second one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.audit.anchors import AnchorFile, AnchorRecord, anchor_sealed
from services.audit.chain import GENESIS_HASH, ChainHead
from services.audit.metrics import (
    TRAIL_BROKEN,
    TRAIL_ROWS_VERIFIED,
    TRAIL_SECONDS,
    TRAIL_VERIFIED_SEQ,
)
from services.audit.store import AuditStore, Trail


@dataclass(frozen=True)
class Checkpoint:
    """The chain verified from its start through `head`, by a verification begun at `since`."""

    head: ChainHead
    since: datetime


@dataclass(frozen=True)
class AnchorStatus:
    record: AnchorRecord
    sealed: bool
    matches_chain: bool


@dataclass(frozen=True)
class TrailReport:
    trail: Trail
    #: the chain verified from its start through the application's last record
    chain_verified: bool
    verified_through: Checkpoint | None  # how far a full verification has reached, unbroken
    anchor: AnchorStatus | None
    anchor_note: str
    checked_at: datetime

    @property
    def broken(self) -> bool:
        return not self.trail.chain.ok or any(not r.verified for r in self.trail.records)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TrailReader:
    """Trails of one chain, sharing one checkpoint (one verification at a time)."""

    def __init__(
        self,
        store: AuditStore,
        anchor_file: Path,
        *,
        max_rows: int = 50_000,
        reverify_after: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.anchors = AnchorFile(anchor_file)
        self.max_rows = max_rows
        self.reverify_after = reverify_after
        self.clock = clock
        self.checkpoint: Checkpoint | None = None
        self._lock = asyncio.Lock()

    async def trail(self, application_id: str, tenant: str | None) -> TrailReport | None:
        """The application's trail in the tenant (None: any tenant's); None when it has none."""
        started = time.perf_counter()
        async with self._lock:
            now = self.clock()
            checkpoint = self.checkpoint
            if checkpoint is not None and now - checkpoint.since > self.reverify_after:
                checkpoint = None
            trail = await self.store.trail(
                application_id,
                tenant,
                after=checkpoint.head if checkpoint else None,
                max_rows=self.max_rows,
            )
            if trail is None:
                return None
            if trail.resumed_from is None:
                checkpoint = None  # started over (none, too old, or pruned away)
            chain = trail.chain
            TRAIL_ROWS_VERIFIED.inc(chain.rows_checked)
            since = checkpoint.since if checkpoint else now
            # what verified unbroken: through the new head, or up to the row before the break
            reached = Checkpoint(chain.head, since) if chain.head.seq else None
            if checkpoint is not None and chain.head.seq < checkpoint.head.seq:
                reached = checkpoint
            broken_at = chain.first_broken_seq
            if reached is not None and broken_at is not None and reached.head.seq >= broken_at:
                reached = None
            # a broken chain is verified from its start again next time, to say where it breaks
            self.checkpoint = reached if chain.ok else None
            TRAIL_VERIFIED_SEQ.set(self.checkpoint.head.seq if self.checkpoint else 0)
        anchor, note = await self._anchor(trail)
        report = TrailReport(
            trail=trail,
            chain_verified=chain.ok and trail.complete,
            verified_through=reached,
            anchor=anchor,
            anchor_note=note,
            checked_at=now,
        )
        if report.broken:
            TRAIL_BROKEN.inc()
        TRAIL_SECONDS.observe(time.perf_counter() - started)
        return report

    async def _anchor(self, trail: Trail) -> tuple[AnchorStatus | None, str]:
        """The anchor file's newest anchor, checked against its seal and the stored row. The
        topic's copy is compared by `python -m services.audit verify`, not per request."""
        try:
            newest = await asyncio.to_thread(self.anchors.newest)
        except OSError as exc:
            return None, f"the anchor file cannot be read here ({exc.strerror})"
        if newest is None:
            return None, "no anchor in this server's anchor file yet"
        sealed = anchor_sealed(self.store.mac_key, newest)
        if newest.seq == 0:
            matches = newest.row_hash == GENESIS_HASH
        elif newest.seq < trail.start_seq:
            matches = True  # pruned under a sealed retention event
        else:
            stored = await self.store.row_hashes([newest.seq])
            matches = stored.get(newest.seq) == newest.row_hash
        return AnchorStatus(newest, sealed, matches), ""
