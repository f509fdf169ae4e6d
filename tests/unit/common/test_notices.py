"""Members' notices: every reason has its Kiswahili words, a notice exists only for the outcome
that stands as a decline, and the PDF carries both languages."""

from __future__ import annotations

import pytest

from services.common.notices import (
    MAX_NOTICE_REASONS,
    NotADecline,
    OutcomeChange,
    notice_of,
    notice_pdf,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.reasons import REASON_TEXT, REASON_TEXT_SW, describe


def test_every_reason_has_kiswahili_words_for_typical_values() -> None:
    assert set(REASON_TEXT_SW) == set(REASON_TEXT)
    for feature in REASON_TEXT:
        for value in (-1200.0, 0.0, 1.0, 3.0, 0.35, 25_000.0):
            english, swahili = describe(feature, value, "en"), describe(feature, value, "sw")
            assert (english is None) == (swahili is None), feature
            if english is not None:
                assert swahili and swahili != english, feature


def _decision(band: int, reasons: int = 6) -> CreditDecision:
    decision = CreditDecision(decision_id="d-1", application_id="a-1", band=band)  # type: ignore[arg-type]
    decision.decided_at.GetCurrentTime()
    for i, code in enumerate(list(REASON_TEXT)[:reasons]):
        decision.features[code] = float(i + 2)
        decision.reasons.add(code=code, description=f"as scored {i}", contribution=1.0 - i / 10)
    return decision


def test_a_notice_is_for_the_outcome_that_stands_as_a_decline() -> None:
    declined = _decision(DecisionBand.DECISION_BAND_DECLINE)
    notice = notice_of(declined)
    assert len(notice.reasons) == MAX_NOTICE_REASONS
    assert [r.code for r in notice.reasons] == [r.code for r in declined.reasons][:4]
    assert not notice.reviewed
    with pytest.raises(NotADecline):
        notice_of(_decision(DecisionBand.DECISION_BAND_REVIEW))
    approved_on_review = ReviewOutcome(final_band=DecisionBand.DECISION_BAND_APPROVE)
    with pytest.raises(NotADecline):
        notice_of(declined, approved_on_review)
    declined_on_review = ReviewOutcome(final_band=DecisionBand.DECISION_BAND_DECLINE)
    assert notice_of(_decision(DecisionBand.DECISION_BAND_REVIEW), declined_on_review).reviewed


def test_the_pdf_carries_the_reasons_the_changes_and_the_appeal_in_both_languages() -> None:
    change = OutcomeChange("amount_kes", "borrow KES 40,000 instead", "kopa KES 40,000 badala yake")
    notice = notice_of(_decision(DecisionBand.DECISION_BAND_DECLINE, 2), changes=[change])
    pdf = notice_pdf(notice, "Demo SACCO")
    assert pdf.startswith(b"%PDF-")
    for reason in notice.reasons:
        assert reason.en.encode() in pdf and reason.sw.encode() in pdf
    for text in (b"borrow KES 40,000 instead", b"kopa KES 40,000 badala yake", b"Demo SACCO"):
        assert text in pdf
    assert b"How to appeal" in pdf and b"Jinsi ya kukata rufaa" in pdf
