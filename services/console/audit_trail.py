"""An application's audit trail, read from the audit service's gRPC contract (never its tables):
every audited event as the chain stores it, each with the verifier's mark, and the chain's status
in words an officer can act on. The page still renders when the audit service is away; it says
so rather than show an unverified trail as if it were checked."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import grpc

from services.common.protos.alama.audit.v1 import audit_pb2, audit_pb2_grpc
from services.common.telemetry import inject_grpc_metadata

log = logging.getLogger(__name__)

#: verifying on from the audit service's checkpoint may take a while on a long chain
DEFAULT_TIMEOUT_S = 10.0

Verdict = Literal["verified", "broken", "partial"]


@dataclass(frozen=True)
class TrailEvent:
    seq: int
    topic: str
    payload_type: str  # the message name, without its package
    event_id: str
    producer: str
    occurred_at: datetime
    recorded_at: datetime
    prev_hash: str
    row_hash: str
    payload: str  # indented JSON as stored: personal fields are commitments
    verified: bool
    problem: str
    next_problem: str


@dataclass(frozen=True)
class ChainVerdict:
    state: Verdict
    headline: str
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FetchedTrail:
    events: list[TrailEvent]
    verdict: ChainVerdict | None
    missing: str | None = None  # why there is no trail, for the page
    not_found: bool = False  # the tenant has no such application (not: the service is away)


def _when(stamp: object) -> str:
    moment: datetime = stamp.ToDatetime()  # type: ignore[attr-defined]
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def verdict_of(response: audit_pb2.GetTrailResponse) -> ChainVerdict:
    """What the audit service found, the worst first: a break, an anchor that disagrees, a
    verification that covered only the application's records, or the chain verified."""
    chain = response.chain
    last = response.events[-1].seq if response.events else 0
    details: list[str] = []
    if chain.verified_through_seq and chain.HasField("prefix_verified_at"):
        details.append(
            f"A full verification from the chain's start (seq {chain.start_seq}) has reached"
            f" seq {chain.verified_through_seq} unbroken; the rows before this request's part"
            f" were checked by the audit service since {_when(chain.prefix_verified_at)}."
        )
    if chain.HasField("latest_anchor"):
        anchor = chain.latest_anchor
        details.append(
            f"Newest anchor outside the database: seq {anchor.seq}, {_when(anchor.anchored_at)}"
            f" ({'sealed' if anchor.sealed else 'NOT sealed by the audit key'},"
            f" {'matches the chain' if anchor.matches_chain else 'does NOT match the chain'})."
        )
    elif chain.anchor_note:
        details.append(f"No anchor to compare: {chain.anchor_note}.")
    details.append(f"The chain holds seq {chain.start_seq} to {chain.head_seq}.")
    if not chain.ok:
        return ChainVerdict(
            "broken", f"Broken at record {chain.first_broken_seq}: {chain.reason}.", details
        )
    if chain.HasField("latest_anchor") and not (
        chain.latest_anchor.sealed and chain.latest_anchor.matches_chain
    ):
        return ChainVerdict(
            "broken",
            f"The chain's newest anchor (seq {chain.latest_anchor.seq}) disagrees with the"
            " database: rows were rewritten or deleted since it was taken.",
            details,
        )
    if chain.scope == audit_pb2.VERIFICATION_SCOPE_CHAIN:
        return ChainVerdict(
            "verified",
            f"Verified: every record from the chain's start through this application's last"
            f" (seq {last}) recomputes from its content, links to the one before it and is"
            " sealed.",
            details,
        )
    return ChainVerdict(
        "partial",
        "Not fully verifiable now: this application's records and their links to their"
        " neighbours verify, but the chain before them is too long to verify in one request"
        f" (verified so far through seq {chain.verified_through_seq}). `python -m services.audit"
        " verify` checks all of it.",
        details,
    )


def _event(event: audit_pb2.AuditedEvent) -> TrailEvent:
    try:
        payload = json.dumps(json.loads(event.payload_json), indent=2, sort_keys=True)
    except ValueError:
        payload = event.payload_json
    return TrailEvent(
        seq=event.seq,
        topic=event.topic,
        payload_type=event.payload_type.rsplit(".", 1)[-1],
        event_id=event.event_id,
        producer=event.producer,
        occurred_at=event.occurred_at.ToDatetime(),
        recorded_at=event.recorded_at.ToDatetime(),
        prev_hash=event.prev_hash,
        row_hash=event.row_hash,
        payload=payload,
        verified=event.check.verified,
        problem=event.check.problem,
        next_problem=event.check.next_problem,
    )


class AuditTrailReader:
    """One persistent channel to the audit service."""

    def __init__(self, target: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.timeout_s = timeout_s

    async def trail(self, application_id: str, tenant: str) -> FetchedTrail:
        request = audit_pb2.GetTrailRequest(tenant_id=tenant, application_id=application_id)
        try:
            response = await self.stub.GetTrail(
                request, timeout=self.timeout_s, metadata=inject_grpc_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return FetchedTrail(
                    [],
                    None,
                    "The audit chain holds no event of this application (yet).",
                    not_found=True,
                )
            log.warning("audit trail unavailable", extra={"code": exc.code().name})
            return FetchedTrail(
                [],
                None,
                "The audit service is unavailable, so the trail cannot be read or verified"
                " now; try again shortly.",
            )
        return FetchedTrail([_event(e) for e in response.events], verdict_of(response))

    async def close(self) -> None:
        await self.channel.close()
