"""The outcomes service's part of a member's data (Kenya Data Protection Act 2019): per
application the decision it joins loans to (PD, band, the band a review left), the challenger's
decision in shadow, the gender and age band core banking sent for fairness oversight, and per loan
its disbursement, each instalment's days late and the outcome.

None of it holds the member id: rows are filed under the member's tenant-scoped keyed pseudonym
(`OutcomesStore.ref`). `OutcomesHolder` is what `services.common.member_rights` reads and erases
(the CLI's direct path and the answer to an export event); `OutcomesErasures` answers
`MemberErasureRequested` on member.erasures with a `MemberErasureCompleted` (store "outcomes"),
dated at the request like the retrainer's: the outcomes consumer may be behind its topics.

Live performance and the shadow comparison are recomputed from the remaining rows at the next
refresh; outcomes already published on credit.loan_outcomes stay on the topic until its retention
expires (the receipt says so), and the retrainer erases its own copy.
"""

from __future__ import annotations

from services.common.member_rights import StoreErasures, StoreHolder

STORE = "outcomes"


class OutcomesHolder(StoreHolder):
    name = STORE


class OutcomesErasures(StoreErasures):
    store_name = STORE
