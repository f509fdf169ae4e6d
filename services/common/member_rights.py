"""Members' rights under the Kenya Data Protection Act 2019: export everything, erase everything.

A member is a (tenant, member id) pair: a tenant may export or erase only a member it holds
records for, and any other member id is `MemberNotFound` (a 404 that confirms nothing).

Each store that keeps a member's data implements `MemberDataHolder` in its own service folder
(decisions and explanations, the audit chain, Feast, the Faust tables, the console's and the
retrainer's copies of applications, the outcomes service's loans and their outcomes);
`MemberRights` runs them in
one order for both rights, so an export and an erasure can never disagree about what "everything"
is. Feast and the Faust tables are keyed by `MemberRef.key` (tenant and member id), and are only
touched once a holder of the tenant's decisions has vouched that the member is the tenant's.

Raw member ids never go into spans or logs: `member_pseudonym` is a keyed HMAC (the key is a
secret from settings), stable per member so operators can still follow one member's traces once
they compute it, useless to anyone without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, Self, TypeVar

from services.common.errors import AlamaError
from services.common.members import MEMBER_ID_PATTERN, TENANT_PATTERN, member_key
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.members_pb2 import (
    MemberErasureCompleted,
    MemberErasureRequested,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

PSEUDONYM_PREFIX = "mbr_"
LAW = "Kenya Data Protection Act 2019"


class MemberNotFound(AlamaError):
    """The tenant holds nothing on this member (or the member is another tenant's)."""


class InvalidMember(AlamaError, ValueError):
    """A member id or tenant that cannot name a member."""


class MemberRightsFailed(AlamaError):
    """A store failed part-way; what was done is idempotent, so the request can be repeated."""


def member_pseudonym(key: bytes, member_id: str) -> str:
    """The keyed pseudonym of a member id, for spans, logs and the audit chain.

    Not tenant-scoped: Feast and the Faust tables (whose spans carry it) do not know tenants, and
    one member's spans should share one pseudonym whichever service wrote them.
    """
    if not key:
        raise ValueError("the member pseudonym key is empty")
    digest = hmac.new(key, f"alama-member\0{member_id}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


@dataclass(frozen=True)
class MemberRef:
    """One tenant's member, and its pseudonym (what may be logged)."""

    tenant: str
    member_id: str
    pseudonym: str

    @classmethod
    def of(cls, tenant: str, member_id: str, key: bytes) -> MemberRef:
        if not re.fullmatch(TENANT_PATTERN, tenant):
            raise InvalidMember(f"tenant must match {TENANT_PATTERN}")
        if not re.fullmatch(MEMBER_ID_PATTERN, member_id):
            raise InvalidMember(f"member id must match {MEMBER_ID_PATTERN}")
        return cls(tenant, member_id, member_pseudonym(key, member_id))

    @classmethod
    def carried(cls, tenant: str, member_id: str, pseudonym: str) -> MemberRef:
        """The member an event names (validated like an admin's input), with the pseudonym the
        event carries: the receiving store needs no pseudonym key."""
        member = cls.of(tenant, member_id, b"unused")
        return cls(member.tenant, member.member_id, pseudonym)

    @property
    def key(self) -> str:
        """The member's key in the stores of features (Feast, the feature store's tables)."""
        return member_key(self.tenant, self.member_id)

    def __repr__(self) -> str:  # never the raw id, wherever a ref gets printed
        return f"MemberRef(tenant={self.tenant!r}, pseudonym={self.pseudonym!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class ErasureRequest:
    """Who asked to erase which member, and when; what the audit chain records (no raw id)."""

    request_id: str
    member: MemberRef
    requested_by: str
    requested_at: datetime

    @classmethod
    def new(cls, member: MemberRef, requested_by: str, now: datetime | None = None) -> Self:
        return cls(f"erasure-{uuid.uuid4()}", member, requested_by, now or datetime.now(UTC))


class MemberDataHolder(Protocol):
    """One store's part of a member's data.

    `tenant_scoped` holders know which tenant a member belongs to (`holds`); the others are
    keyed by member id alone and trust that check. `erase` is idempotent and returns how many
    records it removed or made unreadable.
    """

    name: str
    tenant_scoped: bool

    async def holds(self, member: MemberRef) -> bool: ...

    async def export(self, member: MemberRef) -> Any:
        """JSON-ready data (dicts, lists, strings, numbers, None)."""
        ...

    async def erase(self, member: MemberRef) -> int: ...


class MemberAudit(MemberDataHolder, Protocol):
    """The audit chain: a tenant-scoped holder that also records the erasure request.

    `erase_and_record` makes the member's audit data unreadable and appends the request (with
    every other store's counts) in one transaction, so the chain never says "erased" about data
    it still holds, nor holds erased data without saying so. Returns (records erased, seq).
    """

    async def erase_and_record(
        self, request: ErasureRequest, erased: Mapping[str, int]
    ) -> tuple[int, int | None]: ...


@dataclass(frozen=True)
class MemberExport:
    """Everything Alama holds on one member, by store."""

    member: MemberRef
    exported_at: datetime
    stores: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """The JSON document the member receives (their own id included: it is theirs)."""
        return {
            "member_id": self.member.member_id,
            "tenant": self.member.tenant,
            "member_ref": self.member.pseudonym,
            "exported_at": self.exported_at.isoformat(),
            "law": LAW,
            "stores": self.stores,
        }


@dataclass(frozen=True)
class ErasureReceipt:
    """What an erasure did: per store, how many records went or became unreadable."""

    request_id: str
    tenant: str
    member_ref: str
    requested_by: str
    requested_at: datetime
    erased: dict[str, int]
    audit_seq: int | None
    kept: tuple[str, ...] = field(default_factory=tuple)

    def document(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "member_ref": self.member_ref,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "erased": self.erased,
            "audit_seq": self.audit_seq,
            "kept": list(self.kept),
            "law": LAW,
        }


#: What an erasure cannot reach, stated in every receipt.
KEPT_AFTER_ERASURE = (
    "Kafka topics keep the original events (loan.applications, credit.decisions,"
    " credit.decisions.shadow, credit.explanations, mobile_money.transactions, core.loans,"
    " core.repayments, credit.loan_outcomes) until their retention period expires; they cannot"
    " be rewritten",
    "the audit chain keeps each event's hashes, salted commitments, scores, bands and reasons,"
    " no longer linkable to the member (the salts and raw values are erased)",
)


class MemberRights:
    """Export and erase one tenant's member across every holder, in one fixed order.

    Erasure runs the stores in order and the audit last: it erases its own part and records
    the request, with the counts, in one transaction. A store that fails stops the erasure
    before it is recorded; every step is idempotent and the audit (tenant-scoped) still holds
    the member until its own step, so repeating the request finishes it. An erased member stays
    the tenant's (the chain records the erasure under the member's pseudonym), so a repeat is a
    receipt of zeros, not a 404.
    """

    def __init__(self, stores: Sequence[MemberDataHolder], audit: MemberAudit) -> None:
        self.stores = list(stores)
        self.audit = audit

    @property
    def holders(self) -> list[MemberDataHolder]:
        return [*self.stores, self.audit]

    async def _check_tenant(self, member: MemberRef) -> None:
        for holder in self.holders:
            if holder.tenant_scoped and await holder.holds(member):
                return
        raise MemberNotFound(f"tenant {member.tenant!r} holds no member with this id")

    async def export(self, member: MemberRef, now: datetime | None = None) -> MemberExport:
        await self._check_tenant(member)
        stores = {holder.name: await holder.export(member) for holder in self.holders}
        return MemberExport(member, now or datetime.now(UTC), stores)

    async def erase(self, request: ErasureRequest) -> ErasureReceipt:
        member = request.member
        await self._check_tenant(member)
        erased: dict[str, int] = {}
        for holder in self.stores:
            erased[holder.name] = await self._step(holder.name, holder.erase(member))
        count, seq = await self._step(self.audit.name, self.audit.erase_and_record(request, erased))
        erased[self.audit.name] = count
        return ErasureReceipt(
            request_id=request.request_id,
            tenant=member.tenant,
            member_ref=member.pseudonym,
            requested_by=request.requested_by,
            requested_at=request.requested_at,
            erased=erased,
            audit_seq=seq,
            kept=KEPT_AFTER_ERASURE,
        )

    @staticmethod
    async def _step(name: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except Exception as exc:
            raise MemberRightsFailed(
                f"erasing from {name} failed ({type(exc).__name__}); the request is not recorded"
                " yet and every step is idempotent: repeat it"
            ) from exc


#: One variable for every service, so a member has one pseudonym in every span and log.
PSEUDONYM_KEY_VARIABLE = "ALAMA_MEMBER_PSEUDONYM_KEY"
DEV_PSEUDONYM_KEY = "dev-only-member-pseudonym-key-change-me"


def pseudonym_key_field() -> Any:
    """The settings field holding the member pseudonym key (refused outside development mode
    while it is the public default, like every `dev-only-` secret)."""
    from pydantic import Field, SecretStr

    return Field(
        default=SecretStr(DEV_PSEUDONYM_KEY),
        validation_alias=PSEUDONYM_KEY_VARIABLE,
        description="HMAC key of member pseudonyms in spans, logs and the audit chain",
    )


@dataclass
class MemberRightsBackend:
    """`MemberRights` as a host opened it, the pseudonym key, and what closes its connections."""

    rights: MemberRights
    pseudonym_key: bytes
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def member(self, tenant: str, member_id: str) -> MemberRef:
        return MemberRef.of(tenant, member_id, self.pseudonym_key)

    async def close(self) -> None:
        for close in self.closers:
            await close()


# --- erasure as events (member.erasures -> each store -> member.erasures.completed) -----------

#: Every store that answers an erasure request with a `MemberErasureCompleted`, the status
#: endpoint's list: the tenant-scoped ones first (they vouch), then the others. The retrainer
#: runs on demand: until it has run and answered, a request is pending (never completed).
ERASURE_STORES = (
    "decisions",
    "audit",
    "feast",
    "faust_tables",
    "console",
    "outcomes",
    "retrainer",
)
TENANT_SCOPED_STORES = ("decisions", "audit")


def tenant_member_ref(key: bytes, tenant: str, member_id: str) -> str:
    """The tenant-scoped keyed pseudonym: the key of the erased-members sets, so a store can
    refuse to re-create an erased member's rows without keeping the raw id."""
    if not key:
        raise ValueError("the member pseudonym key is empty")
    digest = hmac.new(
        key, f"alama-tenant-member\0{tenant}\0{member_id}".encode(), hashlib.sha256
    ).hexdigest()
    return "tmbr_" + digest[:40]


def erasure_requested(request: ErasureRequest) -> MemberErasureRequested:
    """The `MemberErasureRequested` payload of a request."""
    message = MemberErasureRequested(
        request_id=request.request_id,
        tenant_id=request.member.tenant,
        member_id=request.member.member_id,
        member_ref=request.member.pseudonym,
        requested_by=request.requested_by,
    )
    message.requested_at.FromDatetime(request.requested_at)
    return message


def erasure_request_of(message: MemberErasureRequested) -> ErasureRequest:
    """The request a `MemberErasureRequested` carries (validated like an admin's input)."""
    return ErasureRequest(
        request_id=message.request_id,
        member=MemberRef.carried(message.tenant_id, message.member_id, message.member_ref),
        requested_by=message.requested_by,
        requested_at=message.requested_at.ToDatetime(tzinfo=UTC),
    )


def erasure_completed(
    request: ErasureRequest,
    store: str,
    records_erased: int,
    *,
    member_held: bool = True,
    audit_seq: int | None = None,
    now: datetime | None = None,
) -> MemberErasureCompleted:
    """One store's `MemberErasureCompleted` for a request (no raw member id)."""
    message = MemberErasureCompleted(
        request_id=request.request_id,
        tenant_id=request.member.tenant,
        member_ref=request.member.pseudonym,
        store=store,
        records_erased=records_erased,
        member_held=member_held,
        audit_seq=audit_seq or 0,
    )
    message.completed_at.FromDatetime(now or datetime.now(UTC))
    return message


def completion_event_id(request_id: str, store: str) -> str:
    """Deterministic: a store that handles a redelivered request publishes the same event."""
    return f"{request_id}/{store}"


def completion_envelope(
    request: ErasureRequest,
    store: str,
    records_erased: int,
    *,
    producer: str,
    member_held: bool = True,
    audit_seq: int | None = None,
) -> EventEnvelope:
    """One store's `MemberErasureCompleted` in its envelope, its event id derived from the
    request (`completion_event_id`), as every store publishes it."""
    from services.common.envelope import wrap  # the envelope module imports this one's types

    return wrap(
        erasure_completed(
            request, store, records_erased, member_held=member_held, audit_seq=audit_seq
        ),
        producer=producer,
        subject=request.request_id,
        event_id=completion_event_id(request.request_id, store),
    )


class ErasableStore(Protocol):
    """A service's own store of members' data, as its erasure answer uses it (a dated store's
    `erase_member` also takes `erased_at`)."""

    async def holds_member(self, tenant: str, member_id: str) -> bool: ...

    async def erase_member(self, tenant: str, member_id: str) -> int: ...


class MemberStore(ErasableStore, Protocol):
    """A service's own tenant-scoped store of members' data, as the member-rights holder reads
    it."""

    async def member_data(self, tenant: str, member_id: str) -> Any: ...


class StoreHolder:
    """The `MemberDataHolder` of a service's own tenant-scoped store (the CLI's direct path and
    the answer to an export event): erasing through it erases everything now."""

    name: str = ""
    tenant_scoped = True

    def __init__(self, store: MemberStore) -> None:
        if not self.name:
            raise TypeError("a store's holder names its store (name)")
        self.store = store

    async def holds(self, member: MemberRef) -> bool:
        return await self.store.holds_member(member.tenant, member.member_id)

    async def export(self, member: MemberRef) -> Any:
        return await self.store.member_data(member.tenant, member.member_id)

    async def erase(self, member: MemberRef) -> int:
        return await self.store.erase_member(member.tenant, member.member_id)


class StoreErasures:
    """A service's answer to `MemberErasureRequested` for one store it owns: erase, then publish
    the store's `MemberErasureCompleted` (its event id derived from the request, so a redelivery
    publishes the same event) before the request's offset commits. Nothing logs the raw id.

    `dated` stores erase what the member had sent by the time of the request (`erased_at`), not
    by the time this store got to it: a store that answers late (a backlog, a service started on
    demand) keeps what the member sent after asking, whatever order its topics are read in.
    """

    store_name: str = ""
    dated: bool = True

    def __init__(
        self,
        store: ErasableStore,
        send: Callable[[str, EventEnvelope], Awaitable[None]],
        topic: str,
        service: str,
    ) -> None:
        if not self.store_name:
            raise TypeError("a store's erasure answer names its store (store_name)")
        self.store = store
        self.send = send
        self.topic = topic
        self.service = service

    async def handle(self, event: Any, _record: object = None) -> None:
        """`event` is the request's decoded `Event`; a request naming no valid member raises
        `InvalidMember` (the consumer dead-letters it with its reason)."""
        message: MemberErasureRequested = event.payload
        request = erasure_request_of(message)
        member = request.member
        held = await self.store.holds_member(member.tenant, member.member_id)
        dated: dict[str, Any] = {}
        if self.dated:  # none when the request carries no time: now, and everything
            dated["erased_at"] = request.requested_at if message.HasField("requested_at") else None
        erased = await self.store.erase_member(member.tenant, member.member_id, **dated)
        envelope = completion_envelope(
            request, self.store_name, erased, producer=self.service, member_held=held
        )
        await self.send(self.topic, envelope)  # on the broker before the offset commits
        log.info(
            "member erased",
            extra={
                "store": self.store_name,
                "request_id": request.request_id,
                "member_ref": member.pseudonym,
                "tenant": member.tenant,
                "rows": erased,
                "held": held,
            },
        )
