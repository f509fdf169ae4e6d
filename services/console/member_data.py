"""The console's part of a member's data (Kenya Data Protection Act 2019): the applications it
keeps (with the protected attributes core banking sent), the decisions, review items and every
action on them (an officer's justification, a member's grounds).

`ConsoleHolder` is what `services.common.member_rights` reads and erases (the CLI's direct path
and the answer to an export event); `ConsoleErasures` answers `MemberErasureRequested` on
member.erasures with a `MemberErasureCompleted` (store "console"), its event id derived from the
request so a redelivery publishes the same event. Nothing here logs the raw member id.
"""

from __future__ import annotations

from services.common.member_rights import StoreErasures, StoreHolder

STORE = "console"


class ConsoleHolder(StoreHolder):
    name = STORE


class ConsoleErasures(StoreErasures):
    store_name = STORE
    dated = False  # the console erases everything it holds on the member, at once
