"""The feature store's part of a member's erasure, in the running worker.

The worker consumes member.erasures.vouched: requests the audit service (tenant-scoped) has
vouched for, keyed by member id and co-partitioned with the source topics, so the worker that
holds the member's state is the one that gets the request. For each it

- drops the member from its in-memory activity tables (a table delete, which also writes the
  changelog tombstone), so the member's pending push is gone too and the retry timer cannot
  write the member back to Feast;
- remembers the erasure in the ``erased_members`` table, keyed by the keyed pseudonym of the
  member's tenant-scoped key (no raw id) with the request's time, so a redelivered transaction
  or repayment from before the erasure is skipped (outcome ``erased``) instead of starting the
  history again; one that happened later starts a new history;
- deletes the member's rows in Feast's online and offline stores (`member_data.FeastMemberData`);
- answers with a `MemberErasureCompleted` per store ("faust_tables", "feast").

The tables and Feast are keyed by the tenant-scoped member key (services.common.members), so
erasing one SACCO's member M-0001 leaves another SACCO's M-0001 alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from faust.types import TableT

from services.common.envelope import Event
from services.common.member_rights import (
    ErasureRequest,
    MemberRef,
    completion_envelope,
    erasure_request_of,
)
from services.common.protos.alama.events.v1.members_pb2 import MemberErasureRequested

if TYPE_CHECKING:
    from services.feature_store.agents import FeatureStoreService

log = logging.getLogger(__name__)

#: erases one member's Feast rows (online and offline); returns how many went
FeastEraser = Callable[[MemberRef], Awaitable[int]]
FAUST_TABLES = "faust_tables"
FEAST = "feast"
ERASED = "erased"


class MemberErasures:
    """What the worker does with a vouched erasure request."""

    def __init__(
        self,
        service: FeatureStoreService,
        erased: TableT[str, Any],
        feast: FeastEraser | None,
        completed_topic: str,
    ) -> None:
        self.service = service
        self.erased = erased
        self.feast = feast
        self.completed_topic = completed_topic

    def erased_at(self, member_id: str) -> datetime | None:
        stamp = self.erased.get(self.service.member_ref(member_id))
        return None if stamp is None else datetime.fromisoformat(stamp)

    def refuses(self, member_id: str, occurred_at: datetime) -> bool:
        """Whether an event is an erased member's from before the erasure."""
        erased_at = self.erased_at(member_id)
        return erased_at is not None and occurred_at <= erased_at

    async def handle(self, event: Event[Any]) -> str:
        message: MemberErasureRequested = event.payload
        request = erasure_request_of(message)
        member_id = request.member.key  # the tables' key: this tenant's member only
        ref = self.service.member_ref(member_id)
        previous = self.erased_at(member_id)
        if previous is None or previous < request.requested_at:
            self.erased[ref] = request.requested_at.isoformat()
        held = 0
        for stream in self.service.streams:
            async with stream.lock:  # not while a batch or the retry timer pushes the member
                if stream.table.get(member_id) is not None:
                    held += 1
                    del stream.table[member_id]
        await self._complete(request, FAUST_TABLES, held)
        if self.feast is not None:
            await self._complete(request, FEAST, await self.feast(request.member))
        log.info(
            "member erased from the feature store",
            extra={"request_id": request.request_id, "member_ref": ref, "tables": held},
        )
        return ERASED

    async def _complete(self, request: ErasureRequest, store: str, count: int) -> None:
        envelope = completion_envelope(
            request, store, count, producer=self.service.settings.service_name
        )
        await self.service.publish(self.completed_topic, envelope, [])
