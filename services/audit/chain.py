"""What an audit row holds, how it is serialised, hashed and sealed, and how a chain is verified.

Everything here is pure (no I/O) so the hashing rules can be tested without a database. Personal
identifiers never enter the hashed content: they are replaced by salted commitments, and the raw
values travel beside the row (`PersonalData`) into a table that erasure may delete, so erasing a
member changes nothing that was hashed and the chain still verifies.

The hash chain alone proves order and content to anyone, but whoever can write the table can also
recompute it. So every row is also sealed with a keyed MAC over its hash, with a key the database
never sees: a rewritten or forged row cannot be sealed again without it. A chain may begin after
genesis only where a sealed event in it says why: a retention event (rows pruned through a seq, at
a hash) or the adoption of a chain written before rows were sealed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from services.common.envelope import Event
from services.common.kafka import trace_id_from_headers
from services.common.proto_json import message_to_dict

GENESIS_HASH = "0" * 64
COMMITMENT_PREFIX = "sha256:"

# Top-level payload fields that identify a member or describe them (Kenya Data Protection Act
# 2019): identifiers, what they declared, and the feature values they were scored on (a decision's
# `features` and `sequences`, an explanation's per-feature `contributions`, which carry each
# feature's value).
# Scores, bands and reasons stay readable: with the member unlinked they describe no one.
PERSONAL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "alama.events.v1.LoanApplicationSubmitted": (
        "member_id",
        "national_id_hash",
        "amount_kes",
        "declared_monthly_income_kes",
        "attributes",
    ),
    "alama.events.v1.CreditDecision": ("member_id", "features", "sequences"),
    "alama.events.v1.CreditExplanation": ("contributions",),
    # an officer's justification and a member's grounds may describe the member
    "alama.events.v1.ReviewOutcome": ("justification",),
    "alama.events.v1.AppealLodged": ("grounds",),
}

ERASURE_TOPIC = "audit.erasures"
ERASURE_PAYLOAD_TYPE = "alama.audit.v1.MemberErased"
RETENTION_TOPIC = "audit.retention"
RETENTION_PAYLOAD_TYPE = "alama.audit.v1.RetentionApplied"
MIGRATION_TOPIC = "audit.migrations"
ADOPTION_PAYLOAD_TYPE = "alama.audit.v1.UnsealedChainAdopted"
#: The model registry's changes (promotions, refusals, rollbacks, challengers): system records,
#: no tenant and no application, chained like any event (consumed from model.registry).
REGISTRY_PAYLOAD_TYPE = "alama.events.v1.ModelRegistryChanged"
#: The events that say where a chain may start or stay unsealed; verification reads them first.
MAINTENANCE_PAYLOAD_TYPES = (RETENTION_PAYLOAD_TYPE, ADOPTION_PAYLOAD_TYPE)


@dataclass(frozen=True)
class PersonalData:
    """Raw personal values of one event and the salt that commits to them.

    `member_id` is empty for an event that names no member (an explanation): erasure finds
    those through the member's application ids.
    """

    member_id: str
    salt: str
    fields: Mapping[str, Any]
    #: `canonical_json(fields)` when already made (sealing makes it for the commitment), so the
    #: store writes it instead of encoding a decision's features a third time
    fields_json: str = ""


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
    #: `payload` is `canonical_json`'s own output (not text read back), so sealing may embed it
    payload_canonical: bool = field(default=False, compare=False)


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
    row_mac: str = ""  # empty only on rows written before sealing, covered by an adoption


@dataclass(frozen=True)
class ChainHead:
    """A point of the chain: a row's seq and hash (seq 0 and the genesis hash before any row)."""

    seq: int = 0
    row_hash: str = GENESIS_HASH


@dataclass(frozen=True)
class RetentionApplied:
    """A sealed retention event: rows through `through` were pruned, none younger than min age."""

    seq: int
    recorded_at: datetime
    requested_by: str
    cutoff: datetime
    min_age_days: int
    through: ChainHead


@dataclass(frozen=True)
class UnsealedChainAdopted:
    """Rows `start.seq + 1` .. `through.seq` predate sealing; this sealed event vouches for them."""

    seq: int
    start: ChainHead  # the first unsealed row's predecessor (genesis unless pruned before)
    through: ChainHead


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    first_broken_seq: int | None = None
    reason: str = ""
    start: ChainHead = ChainHead()  # what the first stored row follows
    head: ChainHead = ChainHead()  # the last verified row


def commit(salt: str, value: Any) -> str:
    """A salted commitment: provable with the salt, unlinkable once the salt is erased.

    Text is committed as it is (what rows written before structured fields hold); any other
    value (a number, a feature map, a list of contributions) as its canonical JSON.
    """
    return _commit_text(salt, value if isinstance(value, str) else canonical_json(value))


def _commit_text(salt: str, text: str) -> str:
    return COMMITMENT_PREFIX + hashlib.sha256((salt + text).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_time(moment: datetime) -> str:
    """Microsecond UTC ISO text: what PostgreSQL's timestamptz keeps, so it round-trips."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def separate_personal_data(
    payload_type: str, payload: Mapping[str, Any], subject: str, salt: str
) -> tuple[dict[str, Any], str, PersonalData | None, str]:
    """Replace personal fields (and a personal subject) by commitments.

    Returns the hashed payload, the hashed subject, the raw values and their joint commitment.
    """
    raw = {
        name: payload[name] for name in PERSONAL_FIELDS.get(payload_type, ()) if payload.get(name)
    }
    if not raw:
        return dict(payload), subject, None, ""
    # each value encoded once (a decision's features and sequences are most of its bytes): its
    # text is committed alone and is also its part of `canonical_json(raw)`, which sorts the
    # keys and joins the parts with no spaces, so assembling it gives the same bytes
    texts = {name: canonical_json(value) for name, value in raw.items()}
    hashed = dict(payload) | {
        name: _commit_text(salt, value if isinstance(value, str) else texts[name])
        for name, value in raw.items()
    }
    if subject and subject in raw.values():
        subject = commit(salt, subject)
    joint = "{" + ",".join(f"{canonical_json(name)}:{texts[name]}" for name in sorted(raw)) + "}"
    personal = PersonalData(
        member_id=str(raw.get("member_id", "")), salt=salt, fields=raw, fields_json=joint
    )
    return hashed, subject, personal, _commit_text(salt, joint)


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
        payload_canonical=True,
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
        payload=message_to_dict(event.payload),
        trace_id=trace_id_from_headers(headers),
        salt=salt,
    )


def canonical_content(row: ChainRow, *, payload_canonical: bool = False) -> str:
    """The serialisation that is hashed; prev_hash and row_hash are the chain, not the content.

    With `payload_canonical` (the payload is `canonical_json`'s output, as a fresh draft's is)
    the payload text is embedded as it is instead of parsed and written again: the same bytes,
    since the keys sort with "payload" between "occurred_at" and "payload_type", for a third of
    the cost of sealing a row. Verification always parses (stored text is not trusted).
    """
    content = _content(row)
    if not payload_canonical:
        return canonical_json(content | {"payload": json.loads(row.payload)})
    before = canonical_json({k: v for k, v in content.items() if k < "payload"})
    after = canonical_json({k: v for k, v in content.items() if k > "payload"})
    return f'{before[:-1]},"payload":{row.payload},{after[1:]}'


def _content(row: ChainRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "topic": row.topic,
        "payload_type": row.payload_type,
        "producer": row.producer,
        "occurred_at": canonical_time(row.occurred_at),
        "recorded_at": canonical_time(row.recorded_at),
        "application_id": row.application_id,
        "subject": row.subject,
        "trace_id": row.trace_id,
        "personal_commitment": row.personal_commitment,
    }


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def keyed_mac(key: bytes, purpose: str, message: str) -> str:
    """HMAC-SHA256 with the purpose bound in, so a row seal never passes for an anchor seal."""
    return hmac.new(key, f"{purpose}\0{message}".encode(), hashlib.sha256).hexdigest()


def row_mac(key: bytes, row_hash: str) -> str:
    """The seal of a row: its hash covers its content and every row before it."""
    return keyed_mac(key, "alama-audit-row", row_hash)


def mac_matches(expected: str, actual: str) -> bool:
    return bool(actual) and hmac.compare_digest(expected, actual)


def seal(
    draft: EntryDraft, *, seq: int, recorded_at: datetime, prev_hash: str, key: bytes
) -> ChainRow:
    """Give a draft its place in the chain, its hash and its seal."""
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
    content = canonical_content(row, payload_canonical=draft.payload_canonical)
    row_hash = chain_hash(prev_hash, content)
    return replace(row, row_hash=row_hash, row_mac=row_mac(key, row_hash))


def seal_all(
    drafts: Iterable[EntryDraft], *, after: ChainHead, recorded_at: datetime, key: bytes
) -> list[ChainRow]:
    """Chain drafts one after the other, starting after `after`."""
    rows: list[ChainRow] = []
    seq, prev = after.seq, after.row_hash
    for draft in drafts:
        seq += 1
        row = seal(draft, seq=seq, recorded_at=recorded_at, prev_hash=prev, key=key)
        rows.append(row)
        prev = row.row_hash
    return rows


def retention_payload(
    *, requested_by: str, cutoff: datetime, min_age_days: int, through: ChainHead
) -> dict[str, Any]:
    return {
        "requested_by": requested_by,
        "cutoff": canonical_time(cutoff),
        "min_age_days": min_age_days,
        "through_seq": through.seq,
        "through_hash": through.row_hash,
    }


def adoption_payload(*, start: ChainHead, through: ChainHead) -> dict[str, Any]:
    return {
        "start_seq": start.seq,
        "start_hash": start.row_hash,
        "through_seq": through.seq,
        "through_hash": through.row_hash,
    }


def parse_maintenance(row: ChainRow) -> RetentionApplied | UnsealedChainAdopted | None:
    """The maintenance event a row holds, or None (also for a malformed payload)."""
    try:
        payload = json.loads(row.payload)
        if row.payload_type == RETENTION_PAYLOAD_TYPE:
            return RetentionApplied(
                seq=row.seq,
                recorded_at=row.recorded_at,
                requested_by=str(payload["requested_by"]),
                cutoff=datetime.fromisoformat(payload["cutoff"]),
                min_age_days=int(payload["min_age_days"]),
                through=ChainHead(int(payload["through_seq"]), str(payload["through_hash"])),
            )
        if row.payload_type == ADOPTION_PAYLOAD_TYPE:
            return UnsealedChainAdopted(
                seq=row.seq,
                start=ChainHead(int(payload["start_seq"]), str(payload["start_hash"])),
                through=ChainHead(int(payload["through_seq"]), str(payload["through_hash"])),
            )
    except (KeyError, TypeError, ValueError):
        return None
    return None


class ChainVerifier:
    """Check rows in seq order; stop at the first one that breaks the chain.

    `maintenance` are the chain's own retention and adoption rows (read ahead, in the same
    snapshot): they say where the stored chain may start and which rows may be unsealed. They are
    trusted only because they are checked again, seal included, when the stream reaches them.
    """

    def __init__(
        self,
        key: bytes,
        maintenance: Iterable[ChainRow] = (),
        *,
        unsealed_from: ChainHead | None = None,
        after: ChainHead | None = None,
    ) -> None:
        """`unsealed_from`: check only that rows chain on from there, seals not required (what
        adoption checks before it vouches for a chain written before sealing). `after`: go on
        from a row already verified (or stored, for one record and its neighbours), seals
        required as usual: the audit trail checks a window, or the rest of the chain."""
        self.key = key
        events = [parse_maintenance(row) for row in maintenance]
        self.retentions = [e for e in events if isinstance(e, RetentionApplied)]
        self.adoptions = [e for e in events if isinstance(e, UnsealedChainAdopted)]
        self.unsealed_through = max((a.through.seq for a in self.adoptions), default=0)
        self.start: ChainHead | None = unsealed_from or after
        self.expected = self.start or ChainHead()
        if unsealed_from is not None:
            self.unsealed_through = 2**63 - 1
        self.rows_checked = 0
        self.broken: VerifyResult | None = None

    def _start_reason(self, first: ChainRow) -> str:
        """'' when the first stored row may start the chain, else why not."""
        head = ChainHead(first.seq - 1, first.prev_hash)
        if head == ChainHead():
            return ""
        if any(r.through == head for r in self.retentions):
            return ""
        if any(a.start == head for a in self.adoptions):
            return ""
        return (
            f"rows before seq {first.seq} are missing and no sealed retention event records"
            " their removal (prefix deleted)"
        )

    def _row_reason(self, row: ChainRow) -> str:
        if row.seq != self.expected.seq + 1:
            return f"gap: expected seq {self.expected.seq + 1}, found {row.seq} (row deleted)"
        if row.prev_hash != self.expected.row_hash:
            return "prev_hash does not match the previous row's hash"
        if chain_hash(row.prev_hash, canonical_content(row)) != row.row_hash:
            return "row_hash does not match the row's content (row altered)"
        if not row.row_mac:
            if row.seq > self.unsealed_through:
                return "row is not sealed (no MAC; written or rewritten without the key)"
        elif not mac_matches(row_mac(self.key, row.row_hash), row.row_mac):
            return "row_mac does not match (row forged or rewritten without the key)"
        if row.payload_type in MAINTENANCE_PAYLOAD_TYPES:
            return _maintenance_reason(row)
        return ""

    def check(self, row: ChainRow) -> bool:
        """False once the chain is broken (then `result()` says where and why)."""
        if self.broken is not None:
            return False
        if self.start is None:
            self.start = ChainHead(row.seq - 1, row.prev_hash)
            self.expected = self.start
            reason = self._start_reason(row)
        else:
            reason = ""
        reason = reason or self._row_reason(row)
        self.rows_checked += 1
        if reason:
            self.broken = VerifyResult(
                False, self.rows_checked, row.seq, reason, self.start, self.expected
            )
            return False
        self.expected = ChainHead(row.seq, row.row_hash)
        return True

    def result(self) -> VerifyResult:
        if self.broken is not None:
            return self.broken
        start = self.start or ChainHead()
        return VerifyResult(True, self.rows_checked, start=start, head=self.expected)


def _maintenance_reason(row: ChainRow) -> str:
    event = parse_maintenance(row)
    if event is None:
        return f"malformed {row.payload_type} payload"
    if isinstance(event, RetentionApplied):
        if event.through.seq >= row.seq:
            return "retention event prunes rows after itself"
        if event.min_age_days < 1 or event.cutoff > row.recorded_at - timedelta(
            days=event.min_age_days
        ):
            return "retention event pruned rows younger than its minimum age"
    elif event.through.seq >= row.seq:
        return "adoption event vouches for rows after itself"
    return ""


def verify_rows(
    rows: Iterable[ChainRow], key: bytes, maintenance: Iterable[ChainRow] | None = None
) -> VerifyResult:
    """Verify rows held in memory; maintenance events are taken from the rows unless given."""
    rows = list(rows)
    if maintenance is None:
        maintenance = [r for r in rows if r.payload_type in MAINTENANCE_PAYLOAD_TYPES]
    verifier = ChainVerifier(key, maintenance)
    for row in rows:
        if not verifier.check(row):
            break
    return verifier.result()
