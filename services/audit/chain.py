"""What an audit row holds, how it is serialised and hashed, and how a chain is verified.

Everything here is pure (no I/O) so the hashing rules can be tested without a database. Personal
identifiers never enter the hashed content: they are replaced by salted commitments, and the raw
values travel beside the row (`PersonalData`) into a table that erasure may delete, so erasing a
member changes nothing that was hashed and the chain still verifies.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from services.common.envelope import Event

GENESIS_HASH = "0" * 64
COMMITMENT_PREFIX = "sha256:"
TRACEPARENT_HEADER = "traceparent"

# Top-level payload fields that identify a member (Kenya Data Protection Act 2019).
PERSONAL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "alama.events.v1.LoanApplicationSubmitted": ("member_id", "national_id_hash"),
    "alama.events.v1.CreditDecision": ("member_id",),
}

ERASURE_TOPIC = "audit.erasures"
ERASURE_PAYLOAD_TYPE = "alama.audit.v1.MemberErased"
RETENTION_TOPIC = "audit.retention"


@dataclass(frozen=True)
class PersonalData:
    """Raw personal values of one event and the salt that commits to them."""

    member_id: str
    salt: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class EntryDraft:
    """An event ready to be appended: everything but its place in the chain."""

    event_id: str
    topic: str
    payload_type: str
    producer: str
    occurred_at: datetime
    application_id: str
    subject: str
    payload: str  # canonical JSON, personal fields replaced by commitments
    trace_id: str
    personal_commitment: str
    personal: PersonalData | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChainRow:
    """One stored, hashed audit row."""

    seq: int
    event_id: str
    topic: str
    payload_type: str
    producer: str
    occurred_at: datetime
    recorded_at: datetime
    application_id: str
    subject: str
    payload: str
    trace_id: str
    personal_commitment: str
    prev_hash: str
    row_hash: str


@dataclass(frozen=True)
class Anchor:
    """Where verification starts: the genesis, or the last row that retention pruned."""

    seq: int = 0
    row_hash: str = GENESIS_HASH


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def commit(salt: str, value: str) -> str:
    """A salted commitment: provable with the salt, unlinkable once the salt is erased."""
    return COMMITMENT_PREFIX + hashlib.sha256((salt + value).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_time(moment: datetime) -> str:
    """Microsecond UTC ISO text: what PostgreSQL's timestamptz keeps, so it round-trips."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def trace_id_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> str:
    """The trace id of a W3C traceparent header (``00-<trace>-<span>-<flags>``), or ''."""
    for key, value in headers or ():
        if key == TRACEPARENT_HEADER and value:
            parts = value.decode(errors="replace").split("-")
            if len(parts) >= 3 and len(parts[1]) == 32:
                return parts[1]
    return ""


def separate_personal_data(
    payload_type: str, payload: Mapping[str, Any], subject: str, salt: str
) -> tuple[dict[str, Any], str, PersonalData | None, str]:
    """Replace personal fields (and a personal subject) by commitments.

    Returns the hashed payload, the hashed subject, the raw values and their joint commitment.
    """
    raw = {
        name: str(payload[name])
        for name in PERSONAL_FIELDS.get(payload_type, ())
        if payload.get(name)
    }
    if not raw:
        return dict(payload), subject, None, ""
    hashed = dict(payload) | {name: commit(salt, value) for name, value in raw.items()}
    if subject and subject in raw.values():
        subject = commit(salt, subject)
    personal = PersonalData(member_id=raw.get("member_id", ""), salt=salt, fields=raw)
    return hashed, subject, personal, commit(salt, canonical_json(raw))


def draft_from_payload(
    *,
    event_id: str,
    topic: str,
    payload_type: str,
    producer: str,
    occurred_at: datetime,
    subject: str,
    payload: Mapping[str, Any],
    trace_id: str = "",
    salt: str | None = None,
) -> EntryDraft:
    """Build the row content of an event given its payload as a JSON-ready mapping."""
    hashed, hashed_subject, personal, commitment = separate_personal_data(
        payload_type, payload, subject, salt or secrets.token_hex(16)
    )
    return EntryDraft(
        event_id=event_id,
        topic=topic,
        payload_type=payload_type,
        producer=producer,
        occurred_at=occurred_at,
        application_id=str(payload.get("application_id", "")),
        subject=hashed_subject,
        payload=canonical_json(hashed),
        trace_id=trace_id,
        personal_commitment=commitment,
        personal=personal,
    )


def draft_from_event(
    event: Event[Message],
    topic: str,
    headers: Sequence[tuple[str, bytes]] | None = None,
    *,
    salt: str | None = None,
) -> EntryDraft:
    """Row content of a consumed envelope."""
    envelope = event.envelope
    return draft_from_payload(
        event_id=envelope.event_id,
        topic=topic,
        payload_type=envelope.payload_type,
        producer=envelope.producer,
        occurred_at=event.occurred_at,
        subject=envelope.subject,
        payload=MessageToDict(event.payload, preserving_proto_field_name=True),
        trace_id=trace_id_from_headers(headers),
        salt=salt,
    )


def canonical_content(row: ChainRow) -> str:
    """The serialisation that is hashed; prev_hash and row_hash are the chain, not the content."""
    return canonical_json(
        {
            "seq": row.seq,
            "event_id": row.event_id,
            "topic": row.topic,
            "payload_type": row.payload_type,
            "producer": row.producer,
            "occurred_at": canonical_time(row.occurred_at),
            "recorded_at": canonical_time(row.recorded_at),
            "application_id": row.application_id,
            "subject": row.subject,
            "payload": json.loads(row.payload),
            "trace_id": row.trace_id,
            "personal_commitment": row.personal_commitment,
        }
    )


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def seal(draft: EntryDraft, *, seq: int, recorded_at: datetime, prev_hash: str) -> ChainRow:
    """Give a draft its place in the chain and its hash."""
    row = ChainRow(
        seq=seq,
        event_id=draft.event_id,
        topic=draft.topic,
        payload_type=draft.payload_type,
        producer=draft.producer,
        occurred_at=draft.occurred_at,
        recorded_at=recorded_at,
        application_id=draft.application_id,
        subject=draft.subject,
        payload=draft.payload,
        trace_id=draft.trace_id,
        personal_commitment=draft.personal_commitment,
        prev_hash=prev_hash,
        row_hash="",
    )
    return replace(row, row_hash=chain_hash(prev_hash, canonical_content(row)))


def seal_all(
    drafts: Iterable[EntryDraft], *, after: Anchor, recorded_at: datetime
) -> list[ChainRow]:
    """Chain drafts one after the other, starting after `after`."""
    rows: list[ChainRow] = []
    seq, prev = after.seq, after.row_hash
    for draft in drafts:
        seq += 1
        row = seal(draft, seq=seq, recorded_at=recorded_at, prev_hash=prev)
        rows.append(row)
        prev = row.row_hash
    return rows


class ChainVerifier:
    """Check rows in seq order; stop at the first one that breaks the chain."""

    def __init__(self, anchor: Anchor) -> None:
        self.expected_seq = anchor.seq + 1
        self.expected_prev = anchor.row_hash
        self.rows_checked = 0
        self.broken: VerifyResult | None = None

    def check(self, row: ChainRow) -> bool:
        """False once the chain is broken (then `result()` says where and why)."""
        if self.broken is not None:
            return False
        reason = ""
        if row.seq != self.expected_seq:
            reason = f"gap: expected seq {self.expected_seq}, found {row.seq} (row deleted)"
        elif row.prev_hash != self.expected_prev:
            reason = "prev_hash does not match the previous row's hash"
        elif chain_hash(row.prev_hash, canonical_content(row)) != row.row_hash:
            reason = "row_hash does not match the row's content (row altered)"
        self.rows_checked += 1
        if reason:
            self.broken = VerifyResult(False, self.rows_checked, row.seq, reason)
            return False
        self.expected_seq = row.seq + 1
        self.expected_prev = row.row_hash
        return True

    def result(self) -> VerifyResult:
        return self.broken or VerifyResult(True, self.rows_checked)


def verify_rows(rows: Iterable[ChainRow], anchor: Anchor = Anchor()) -> VerifyResult:
    verifier = ChainVerifier(anchor)
    for row in rows:
        if not verifier.check(row):
            break
    return verifier.result()
