"""Canonical row content, hashing, personal-data commitments and chain verification."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from services.audit.chain import (
    GENESIS_HASH,
    Anchor,
    canonical_content,
    chain_hash,
    commit,
    draft_from_event,
    seal_all,
    trace_id_from_headers,
    verify_rows,
)
from services.common.envelope import Event, decode, encode, wrap
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision

OCCURRED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
RECORDED = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
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
    rows_a = seal_all([a], after=Anchor(), recorded_at=RECORDED)
    rows_b = seal_all([b], after=Anchor(), recorded_at=RECORDED)
    assert rows_a == rows_b
    assert rows_a[0].prev_hash == GENESIS_HASH
    assert rows_a[0].row_hash == chain_hash(GENESIS_HASH, canonical_content(rows_a[0]))


def test_canonical_content_is_sorted_compact_json() -> None:
    draft = draft_from_event(application_event(), "loan.applications", salt="s")
    (row,) = seal_all([draft], after=Anchor(), recorded_at=RECORDED)
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
    assert draft.personal.fields == {"member_id": "m-1", "national_id_hash": "nid-secret"}
    assert draft.personal_commitment.startswith("sha256:")


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
    rows = seal_all(drafts, after=Anchor(), recorded_at=RECORDED)
    assert verify_rows(rows).ok

    altered = list(rows)
    altered[2] = replace(rows[2], producer="mallory")
    result = verify_rows(altered)
    assert (result.ok, result.first_broken_seq) == (False, 3)
    assert "altered" in result.reason

    result = verify_rows(rows[:2] + rows[3:])
    assert (result.ok, result.first_broken_seq) == (False, 4)
    assert "gap" in result.reason


def test_verify_starts_from_an_anchor() -> None:
    drafts = [
        draft_from_event(application_event(event_id=f"ev-{i}"), "loan.applications", salt="s")
        for i in range(4)
    ]
    rows = seal_all(drafts, after=Anchor(), recorded_at=RECORDED)
    anchor = Anchor(rows[1].seq, rows[1].row_hash)
    assert verify_rows(rows[2:], anchor).ok
    assert not verify_rows(rows[2:]).ok


def test_trace_id_is_empty_without_a_traceparent() -> None:
    assert trace_id_from_headers(None) == ""
    assert trace_id_from_headers([("traceparent", b"garbage")]) == ""
