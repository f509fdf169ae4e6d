"""Members' rights wiring: the stores that hold a member's data, opened for the CLI and admin API.

This is the one place outside a service that opens other services' stores, and it does so on
purpose: the CLI answers synchronously with every store's data, in one process. (A deployment
exports and erases through events instead: each service answers for its own stores, see
`services.common.member_exports`.) Each store's holder stays in its own service folder
(`explanation.member_data`, `audit.member_data`, `feature_store.member_data`,
`console.member_data`, `outcomes.member_data`, `retrainer.member_data`); this module only opens
them with each service's settings (`ALAMA_EXPLANATION_DB_SCHEMA`, `ALAMA_AUDIT_*`,
`ALAMA_FEATURE_STORE_CONSUMER_GROUP`, `ALAMA_CONSOLE_DB_SCHEMA`, `ALAMA_OUTCOMES_DB_SCHEMA`,
`ALAMA_RETRAINER_DB_SCHEMA`) and hands them to
`services.common.member_rights`. It lives beside the services, not in one (a service imports
only itself and the shared library, and its image holds nothing else), and it holds the audit
owner's login and the audit MAC key, which no public-facing process should: the CLI
(`python -m member_rights`, an operator's shell) is the way in, and the gateway's admin routes
answer directly only where a host injects this backend.
"""

from __future__ import annotations

import os

from services.audit.member_data import AuditHolder
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from services.common.member_rights import (
    MemberDataHolder,
    MemberRights,
    MemberRightsBackend,
    tenant_member_ref,
)
from services.common.postgres import create_pool
from services.common.settings import InfraSettings
from services.console.member_data import ConsoleHolder
from services.console.store import ConsoleStore
from services.explanation.member_data import DecisionsHolder
from services.explanation.store import DecisionStore
from services.feature_store.member_data import ActivityTableMemberData, FeastMemberData
from services.outcomes.member_data import OutcomesHolder
from services.outcomes.store import OutcomesStore
from services.retrainer.member_data import RetrainerHolder
from services.retrainer.store import RetrainerStore


async def open_member_rights(
    infra: InfraSettings,
    pseudonym_key: bytes,
    *,
    audit: AuditSettings | None = None,
    explanation_schema: str | None = None,
    feature_store_group: str | None = None,
    console_schema: str | None = None,
    outcomes_schema: str | None = None,
    retrainer_schema: str | None = None,
) -> MemberRightsBackend:
    """Open every member store; the audit with its owner's login (erasure deletes its
    personal data), the decision store with the shared login."""
    audit = audit or AuditSettings(infra=infra)
    schema = explanation_schema or os.environ.get("ALAMA_EXPLANATION_DB_SCHEMA", "explanation")
    console = console_schema or os.environ.get("ALAMA_CONSOLE_DB_SCHEMA", "console")
    outcomes = outcomes_schema or os.environ.get("ALAMA_OUTCOMES_DB_SCHEMA", "outcomes")
    retrainer = retrainer_schema or os.environ.get("ALAMA_RETRAINER_DB_SCHEMA", "retrainer")
    group = feature_store_group or os.environ.get(
        "ALAMA_FEATURE_STORE_CONSUMER_GROUP", "feature_store"
    )
    shared = await create_pool(infra, max_size=2)
    owner = await create_pool(
        infra.model_copy(update={"postgres_dsn": audit.owner_dsn}), max_size=2
    )

    def member_ref(tenant: str, member: str) -> str:
        return tenant_member_ref(pseudonym_key, tenant, member)

    console_store = ConsoleStore(shared, console, member_ref)
    await console_store.create_schema()  # idempotent; a console never started holds nothing
    retrainer_store = RetrainerStore(shared, retrainer, member_ref)
    await retrainer_store.create_schema()  # likewise: the retrainer runs on demand
    outcomes_store = OutcomesStore(shared, outcomes, member_ref)
    await outcomes_store.create_schema()
    stores: list[MemberDataHolder] = [
        FeastMemberData(infra),
        ActivityTableMemberData(infra, app_id=group),
        DecisionsHolder(DecisionStore(shared, schema)),
        ConsoleHolder(console_store),
        OutcomesHolder(outcomes_store),
        RetrainerHolder(retrainer_store),
    ]
    audit_holder = AuditHolder(AuditStore(owner, audit.db_schema, mac_key=audit.mac_key_bytes))
    return MemberRightsBackend(
        MemberRights(stores, audit_holder), pseudonym_key, [shared.close, owner.close]
    )


async def file_outcomes_under_members(
    infra: InfraSettings,
    pseudonym_key: bytes,
    *,
    explanation_schema: str | None = None,
    outcomes_schema: str | None = None,
    page: int = 10_000,
) -> int:
    """File the outcomes service's rows stored before they carried pseudonyms under their
    members', from the member id the decision store keeps per application (rows of applications
    it no longer holds stay unfiled: nothing in Alama links them to a member any more). Run once
    after upgrading; repeating it changes nothing. Returns the rows filed."""
    schema = explanation_schema or os.environ.get("ALAMA_EXPLANATION_DB_SCHEMA", "explanation")
    outcomes = outcomes_schema or os.environ.get("ALAMA_OUTCOMES_DB_SCHEMA", "outcomes")
    pool = await create_pool(infra, max_size=2)
    try:
        decisions = DecisionStore(pool, schema)
        await decisions.create_schema()  # idempotent; an explanation never started holds nothing
        store = OutcomesStore(pool, outcomes)
        await store.create_schema()
        filed, after = 0, ("", "")
        while batch := await decisions.application_members(after, page):
            filed += await store.file_under_members(
                [(t, a, tenant_member_ref(pseudonym_key, t, m)) for t, a, m in batch]
            )
            after = batch[-1][:2]
        return filed
    finally:
        await pool.close()
