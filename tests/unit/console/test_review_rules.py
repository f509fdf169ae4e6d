"""The console's review rules without infrastructure: what an officer may submit, when a second
person is needed, redirects that stay on the console, and settings that refuse unsafe cookies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewKind
from services.common.settings import InfraSettings
from services.console.people import WeakPassword, hash_password, password_matches
from services.console.review import (
    Proposal,
    needs_second_person,
    outcome_event,
    proposal_of,
    review_id_of,
)
from services.console.settings import ConsoleSettings
from services.console.store import Application, Item
from services.console.web import local as _local

JUSTIFIED = "Payslips for six months were verified."


def _item(band: int, amount: float | None) -> Item:
    now = datetime.now(UTC)
    return Item(
        decision=CreditDecision(
            decision_id="d-1",
            application_id="a-1",
            band=band,
            tenant_id="t",  # type: ignore[arg-type]
        ),
        tenant_id="t",
        kind=ReviewKind.REVIEW_KIND_BAND,
        appeal_id="",
        entered_at=now,
        state="claimed",
        claimed_by=None,
        claimed_by_name=None,
        claimed_at=None,
        proposal=None,
        proposed_by=None,
        proposed_by_name=None,
        final_band=None,
        closed_at=None,
        application=None if amount is None else Application("a-1", 1, amount, 12, 1, 40_000, now),
    )


def test_an_outcome_needs_a_choice_known_reasons_and_a_written_justification() -> None:
    ok = proposal_of("approve", ["REVIEW_GUARANTORS", "REVIEW_GUARANTORS"], f"  {JUSTIFIED} ")
    assert ok == Proposal("approve", ("REVIEW_GUARANTORS",), JUSTIFIED)
    assert ok.band == DecisionBand.DECISION_BAND_APPROVE
    for outcome, codes, text, field in (
        ("maybe", ["REVIEW_GUARANTORS"], JUSTIFIED, "outcome"),
        ("approve", [], JUSTIFIED, "reason codes"),
        ("approve", ["REVIEW_BRIBE"], JUSTIFIED, "reason codes"),
        ("decline", ["REVIEW_ARREARS"], "too short", "justification"),
        ("decline", ["REVIEW_ARREARS"], JUSTIFIED + "\x00", "justification"),
        ("decline", ["REVIEW_ARREARS"], "x" * 2001, "justification"),
    ):
        with pytest.raises(ValueError, match=field):
            proposal_of(outcome, codes, text)


def test_overriding_a_decline_or_approving_above_the_amount_needs_a_second_person() -> None:
    approve = Proposal("approve", ("REVIEW_GUARANTORS",), JUSTIFIED)
    decline = Proposal("decline", ("REVIEW_ARREARS",), JUSTIFIED)
    review, declined = DecisionBand.DECISION_BAND_REVIEW, DecisionBand.DECISION_BAND_DECLINE
    assert needs_second_person(_item(review, 50_000), approve, 100_000) is None
    assert needs_second_person(_item(review, 100_000), approve, 100_000) is None  # at the limit
    assert "above" in (needs_second_person(_item(review, 100_001), approve, 100_000) or "")
    assert "not known" in (needs_second_person(_item(review, None), approve, 100_000) or "")
    assert "overrides" in (needs_second_person(_item(declined, 10), approve, 100_000) or "")
    assert needs_second_person(_item(review, 10**9), decline, 100_000) is None


def test_an_outcome_event_and_its_id_follow_from_the_item_and_the_outcome() -> None:
    item = _item(DecisionBand.DECISION_BAND_REVIEW, 50_000)
    approve = Proposal("approve", ("REVIEW_GUARANTORS",), JUSTIFIED)
    same = review_id_of(item, approve, "")
    assert same == review_id_of(item, approve, "")  # a retry republishes the same event
    assert same != review_id_of(item, Proposal("decline", ("REVIEW_ARREARS",), JUSTIFIED), "")
    assert same != review_id_of(item, approve, "bob")
    event = outcome_event(item, approve, "alice", "bob", same)
    assert (event.review_id, event.decision_id, event.application_id) == (same, "d-1", "a-1")
    assert (event.reviewer_id, event.second_reviewer_id, event.tenant_id) == ("alice", "bob", "t")
    assert event.original_band == DecisionBand.DECISION_BAND_REVIEW
    assert event.final_band == DecisionBand.DECISION_BAND_APPROVE
    assert list(event.reason_codes) == ["REVIEW_GUARANTORS"] and event.justification == JUSTIFIED


def test_after_sign_in_only_paths_on_the_console_are_followed() -> None:
    assert _local("/items/d-1?done=claimed") == "/items/d-1?done=claimed"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)", "queue"):
        assert _local(elsewhere) == "/queue"


def test_passwords_are_argon2_hashed_and_short_ones_refused() -> None:
    stored = hash_password("a long enough password")
    assert stored.startswith("$argon2id$")
    assert password_matches(stored, "a long enough password")
    assert not password_matches(stored, "a long enough passwore")
    assert not password_matches("not a hash", "a long enough password")
    with pytest.raises(WeakPassword):
        hash_password("short")


def test_session_cookies_may_go_over_plain_http_only_in_development_mode() -> None:
    assert ConsoleSettings(cookie_secure=False, dev_mode=True).cookie_secure is False
    strong = InfraSettings(postgres_dsn=f"postgresql://alama:{'k' * 40}@db:5432/alama")
    key = SecretStr("p" * 40)
    production = {"infra": strong, "member_pseudonym_key": key, "dev_mode": False}
    assert ConsoleSettings(**production).cookie_secure is True  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="COOKIE_SECURE"):
        ConsoleSettings(**production, cookie_secure=False)  # type: ignore[arg-type]
    settings = ConsoleSettings(four_eyes_amounts={"sacco-a": 200_000})
    assert settings.four_eyes_amount("sacco-a") == 200_000
    assert settings.four_eyes_amount("sacco-b") == settings.four_eyes_amount_kes
    with pytest.raises(ValueError, match="four_eyes_amounts"):
        ConsoleSettings(four_eyes_amounts={"bad tenant!": 1})
