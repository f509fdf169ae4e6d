"""The retrainer's part of a member's data (Kenya Data Protection Act 2019): the applications it
keeps to train challengers on (member id, product, amount, term, time) and their outcomes.

`RetrainerHolder` is what `services.common.member_rights` reads and erases (the CLI's direct path
and the answer to an export event); `RetrainerErasures` answers `MemberErasureRequested` on
member.erasures with a `MemberErasureCompleted` (store "retrainer"), its event id derived from the
request so a redelivery publishes the same event. Nothing here logs the raw member id.

The retrainer runs on demand (`python -m infra.supervisor up retrainer`, compose's `retrainer`
profile), so it may be down when a request is made. The gateway's status then reports the store
"pending", and so the request as a whole: never "completed" while this store still holds the
member. Its consumer commits a request's offset only once the answer is on the broker, and a
group with no committed offset starts at the earliest one (`common.kafka.create_consumer`), so
it answers every request still on the topics when it starts: member.erasures keeps them 7 days,
member.exports one (and the gateway keeps export parts for `ALAMA_GATEWAY_EXPORT_TTL_HOURS`). A
request older than that stays pending: repeat it, or use the CLI, which opens this store itself.
An erasure is dated at the request, not at the late answer (`RetrainerStore.erase_member`).

The store is all it keeps: each run's live rows exist as a file only while the job runs
(`runner.Runner`). A challenger already trained on the member's rows is not retrained.
"""

from __future__ import annotations

from services.common.member_rights import StoreErasures, StoreHolder

STORE = "retrainer"


class RetrainerHolder(StoreHolder):
    name = STORE


class RetrainerErasures(StoreErasures):
    store_name = STORE  # dated at the request: the retrainer may answer days later
