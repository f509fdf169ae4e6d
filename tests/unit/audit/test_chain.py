"""Canonical row content, hashing, personal-data commitments and chain verification."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.audit.chain import (
    GENESIS_HASH,
    RETENTION_PAYLOAD_TYPE,
    RETENTION_TOPIC,
    ChainHead,
    ChainRow,
    EntryDraft,
    canonical_content,
    canonical_json,
    chain_hash,
    commit,
    draft_from_event,
    draft_from_payload,
    retention_payload,
    row_mac,
    seal_all,
    verify_rows,
)
from services.common.envelope import Event, decode, encode, wrap
from services.common.kafka import trace_id_from_headers
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision

OCCURRED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
RECORDED = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
KEY = b"unit-test-mac-key"
TRACEPARENT = ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


def application_event(
    member: str = "m-1", event_id: str = "ev-1"
) -> Event[LoanApplicationSubmitted]:
    payload = LoanApplicationSubmitted(
        application_id="app-1",
        member_id=member,
        national_id_hash="nid-secret",
        amount_kes=25_000.0,
        term_months=12,
    )
    envelope = wrap(
        payload, producer="core-banking", subject=member, event_id=event_id, occurred_at=OCCURRED
    )
    return decode(encode(envelope))


def test_drafts_are_deterministic_for_the_same_salt() -> None:
    a = draft_from_event(application_event(), "loan.applications", [TRACEPARENT], salt="s")
    b = draft_from_event(application_event(), "loan.applications", [TRACEPARENT], salt="s")
    assert a == b
    assert a.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert a.application_id == "app-1"
    rows_a = seal_all([a], after=ChainHead(), recorded_at=RECORDED, key=KEY)
    rows_b = seal_all([b], after=ChainHead(), recorded_at=RECORDED, key=KEY)
    assert rows_a == rows_b
    assert rows_a[0].prev_hash == GENESIS_HASH
    assert rows_a[0].row_hash == chain_hash(GENESIS_HASH, canonical_content(rows_a[0]))
    assert rows_a[0].row_mac == row_mac(KEY, rows_a[0].row_hash)


def test_canonical_content_is_sorted_compact_json() -> None:
    draft = draft_from_event(application_event(), "loan.applications", salt="s")
    (row,) = seal_all([draft], after=ChainHead(), recorded_at=RECORDED, key=KEY)
    content = canonical_content(row)
    parsed = json.loads(content)
    assert list(parsed) == sorted(parsed)
    assert list(parsed["payload"]) == sorted(parsed["payload"])
    assert ", " not in content and '": ' not in content
    assert parsed["occurred_at"] == "2026-01-02T03:04:05.678901+00:00"
    assert parsed["seq"] == 1


def test_personal_fields_become_commitments() -> None:
    draft = draft_from_event(application_event(), "loan.applications", salt="salt")
    payload = json.loads(draft.payload)
    assert payload["member_id"] == commit("salt", "m-1")
    assert payload["national_id_hash"] == commit("salt", "nid-secret")
    assert draft.subject == commit("salt", "m-1")
    assert "m-1" not in draft.payload and "nid-secret" not in draft.payload
    assert draft.personal is not None
    assert draft.personal.member_id == "m-1"
    assert draft.personal.fields == {
        "member_id": "m-1",
        "national_id_hash": "nid-secret",
        "amount_kes": 25_000.0,
    }
    assert payload["amount_kes"] == commit("salt", 25_000.0)
    assert draft.personal_commitment.startswith("sha256:")


def test_the_joint_commitment_is_over_the_canonical_json_of_every_personal_value() -> None:
    """Sealing encodes each personal value once and assembles the joint text from the parts:
    it must be the bytes `canonical_json` gives for all of them, which is what verification
    and erasure recompute from the stored values."""
    decision = CreditDecision(decision_id="d-1", application_id="app-1", member_id="m-ü")
    decision.features.update({"z_last": 1e-7, "a_first": -0.0, "ñandú": 12.5, "mid": 3.0})
    decision.sequences["repayment_days_late"].values.extend([0.0, 91.0, 1.5])
    decision.sequences["a_mask"].values.extend([1.0, 0.0])
    event: Event[CreditDecision] = decode(encode(wrap(decision, producer="s", subject="app-1")))
    draft = draft_from_event(event, "credit.decisions", salt="pepper")
    assert draft.personal is not None
    fields = dict(draft.personal.fields)
    assert set(fields) == {"member_id", "features", "sequences"}
    assert draft.personal.fields_json == canonical_json(fields)
    assert draft.personal_commitment == commit("pepper", canonical_json(fields))
    payload = json.loads(draft.payload)
    assert payload["features"] == commit("pepper", fields["features"])
    assert payload["member_id"] == commit("pepper", "m-ü")


def test_salts_make_the_same_member_unlinkable_across_events() -> None:
    a = draft_from_event(application_event(event_id="a"), "loan.applications")
    b = draft_from_event(application_event(event_id="b"), "loan.applications")
    assert json.loads(a.payload)["member_id"] != json.loads(b.payload)["member_id"]


def test_payloads_without_personal_fields_keep_no_personal_data() -> None:
    decision = CreditDecision(decision_id="d-1", application_id="app-1", score=640)
    event: Event[CreditDecision] = decode(
        encode(wrap(decision, producer="scoring", subject="app-1"))
    )
    draft = draft_from_event(event, "credit.decisions")
    assert draft.personal is None
    assert draft.personal_commitment == ""
    assert draft.subject == "app-1"


def test_verify_detects_altered_and_missing_rows() -> None:
    drafts = [
        draft_from_event(application_event(event_id=f"ev-{i}"), "loan.applications", salt="s")
        for i in range(5)
    ]
    rows = seal_all(drafts, after=ChainHead(), recorded_at=RECORDED, key=KEY)
    assert verify_rows(rows, KEY).ok

    altered = list(rows)
    altered[2] = replace(rows[2], producer="mallory")
    result = verify_rows(altered, KEY)
    assert (result.ok, result.first_broken_seq) == (False, 3)
    assert "altered" in result.reason

    result = verify_rows(rows[:2] + rows[3:], KEY)
    assert (result.ok, result.first_broken_seq) == (False, 4)
    assert "gap" in result.reason


def _rows(n: int) -> list[ChainRow]:
    drafts = [
        draft_from_event(application_event(event_id=f"ev-{i}"), "loan.applications", salt="s")
        for i in range(n)
    ]
    return seal_all(drafts, after=ChainHead(), recorded_at=RECORDED, key=KEY)


def _retention(
    through: ChainHead, after: ChainHead, *, days: int = 400, min_days: int = 365
) -> list[ChainRow]:
    draft = draft_from_payload(
        event_id=f"retention-{through.seq}",
        topic=RETENTION_TOPIC,
        payload_type=RETENTION_PAYLOAD_TYPE,
        producer="dpo",
        occurred_at=RECORDED,
        subject="",
        payload=retention_payload(
            requested_by="dpo",
            cutoff=RECORDED - timedelta(days=days),
            min_age_days=min_days,
            through=through,
        ),
    )
    return seal_all([draft], after=after, recorded_at=RECORDED, key=KEY)


def test_a_chain_starts_after_genesis_only_under_a_sealed_retention_event() -> None:
    rows = _rows(4)
    through = ChainHead(rows[1].seq, rows[1].row_hash)
    result = verify_rows(rows[2:], KEY)
    assert (result.ok, result.first_broken_seq) == (False, 3)
    assert "no sealed retention event" in result.reason

    (event,) = _retention(through, ChainHead(rows[-1].seq, rows[-1].row_hash))
    result = verify_rows([*rows[2:], event], KEY)
    assert result.ok and result.start == through and result.head.seq == event.seq, result

    # The same event sealed with another key excuses nothing.
    (forged,) = seal_all(
        [_draft_of(event)],
        after=ChainHead(rows[-1].seq, rows[-1].row_hash),
        recorded_at=RECORDED,
        key=b"guess",
    )
    result = verify_rows([*rows[2:], forged], KEY)
    assert (result.ok, result.first_broken_seq) == (False, forged.seq)
    assert "row_mac" in result.reason


def test_a_retention_event_younger_than_its_minimum_age_breaks_the_chain() -> None:
    rows = _rows(2)
    (event,) = _retention(
        ChainHead(1, rows[0].row_hash), ChainHead(2, rows[1].row_hash), days=3, min_days=365
    )
    result = verify_rows([*rows[1:], event], KEY)
    assert not result.ok and "younger than its minimum age" in result.reason


def test_rows_sealed_with_another_key_or_unsealed_are_caught() -> None:
    rows = _rows(3)
    assert verify_rows(rows, KEY).ok
    assert verify_rows(rows, b"another key").first_broken_seq == 1
    unsealed = [rows[0], replace(rows[1], row_mac=""), rows[2]]
    result = verify_rows(unsealed, KEY)
    assert (result.ok, result.first_broken_seq) == (False, 2) and "not sealed" in result.reason


def _draft_of(row: ChainRow) -> EntryDraft:
    return EntryDraft(
        event_id=row.event_id,
        topic=row.topic,
        payload_type=row.payload_type,
        producer=row.producer,
        occurred_at=row.occurred_at,
        application_id=row.application_id,
        subject=row.subject,
        payload=row.payload,
        trace_id=row.trace_id,
        personal_commitment=row.personal_commitment,
    )


def test_trace_id_is_empty_without_a_traceparent() -> None:
    assert trace_id_from_headers(None) == ""
    assert trace_id_from_headers([("traceparent", b"garbage")]) == ""


def test_sealing_embeds_a_fresh_payload_to_the_byte_what_verification_parses() -> None:
    """A fresh draft's payload goes into the hashed content as it is; verification parses the
    stored text. Both must give the same content for every kind of JSON value, or the row a
    writer seals would fail its own verification."""
    payloads = [
        {},
        {"z": 1, "a": [1.5, -0.0, 1e16, 3.141592653589793], "m": {"b": None, "a": True}},
        {"name": "Wanjirũ Kamau 😀", "quote": 'say "hi"\\n', "ctrl": "\t\u0001", "n": 10**20},
        {"payload": "a key named like the column", "payload_type": "x", "occurred_at": "y"},
        {"nan": float("nan"), "inf": float("inf"), "nested": [{"k": [[], {}]}]},
    ]
    drafts = [
        draft_from_payload(
            event_id=f"ev-{i}",
            topic="t",
            payload_type="alama.events.v1.Test",
            producer="p",
            occurred_at=OCCURRED,
            subject="s",
            payload=payload,
            trace_id="tr",
        )
        for i, payload in enumerate(payloads)
    ]
    rows = seal_all(drafts, after=ChainHead(), recorded_at=RECORDED, key=KEY)
    for draft, row in zip(drafts, rows, strict=True):
        assert draft.payload_canonical
        embedded = canonical_content(row, payload_canonical=True)
        assert embedded == canonical_content(row)
        assert json.loads(embedded)["payload"] == json.loads(row.payload) or "nan" in row.payload
    assert verify_rows(rows, KEY).ok
