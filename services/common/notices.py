"""A member's notice of a declined application: up to four ranked reasons in plain English and
Kiswahili, what would change the outcome where the model can say, and how to appeal; as data
(the API's JSON, the console's page) and as a printable PDF.

Shared by the gateway (`GET /v1/decisions/{id}/notice`) and the console, so a member reads the
same notice whichever way it reaches them. The reasons are the decision's own (the features
that raised the risk most, as scored), each re-worded from the value the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.reasons import describe

MAX_NOTICE_REASONS = 4
APPEAL_DAYS = 30
HOW_TO_APPEAL = {
    "en": (
        f"You may appeal this decision within {APPEAL_DAYS} days. Tell your SACCO's loan officer,"
        " or ask the partner you applied through to lodge an appeal for you. A risk officer who"
        " did not make this decision will review it, and you will be told the outcome."
    ),
    "sw": (
        f"Unaweza kukata rufaa dhidi ya uamuzi huu ndani ya siku {APPEAL_DAYS}. Mwambie afisa wa"
        " mikopo wa SACCO yako, au muombe mshirika uliyeomba kupitia kwake akuwasilishie rufaa."
        " Afisa wa hatari ambaye hakufanya uamuzi huu ataupitia, na utaarifiwa matokeo."
    ),
}
TITLE = {"en": "Notice of a credit decision", "sw": "Taarifa ya uamuzi wa mkopo"}
DECLINED = {
    "en": "Your loan application was declined.",
    "sw": "Ombi lako la mkopo halikukubaliwa.",
}
NO_CHANGE = {
    "en": "The model cannot say which change within your reach would alter the outcome.",
    "sw": "Mfumo hauwezi kusema ni mabadiliko gani unayoweza kufanya yangebadilisha matokeo.",
}


class NotADecline(ValueError):
    """Notices are for declined applications; this decision (or its review) is not one."""


@dataclass(frozen=True)
class NoticeReason:
    code: str
    en: str
    sw: str


@dataclass(frozen=True)
class OutcomeChange:
    """One change the member could make that the model says would lift the decline."""

    feature: str
    en: str
    sw: str


@dataclass(frozen=True)
class Notice:
    decision_id: str
    application_id: str
    tenant_id: str
    decided_at: datetime
    reasons: list[NoticeReason]
    changes: list[OutcomeChange] = field(default_factory=list)
    reviewed: bool = False

    @property
    def how_to_appeal(self) -> dict[str, str]:
        return dict(HOW_TO_APPEAL)


def is_declined(decision: CreditDecision, review: ReviewOutcome | None = None) -> bool:
    """The outcome that stands: a person's review where there was one, else the model's."""
    band = review.final_band if review is not None else decision.band
    return bool(band == DecisionBand.DECISION_BAND_DECLINE)


def notice_of(
    decision: CreditDecision,
    review: ReviewOutcome | None = None,
    changes: list[OutcomeChange] | None = None,
) -> Notice:
    """The member's notice of a decline; `NotADecline` for anything else."""
    if not is_declined(decision, review):
        raise NotADecline(
            f"decision {decision.decision_id!r} is not a decline: notices are for declined"
            " applications"
        )
    reasons = []
    for reason in list(decision.reasons)[:MAX_NOTICE_REASONS]:
        value = decision.features.get(reason.code)
        en = describe(reason.code, value, "en") if value is not None else None
        sw = describe(reason.code, value, "sw") if value is not None else None
        reasons.append(
            NoticeReason(reason.code, en or reason.description, sw or en or reason.description)
        )
    return Notice(
        decision_id=decision.decision_id,
        application_id=decision.application_id,
        tenant_id=decision.tenant_id,
        decided_at=decision.decided_at.ToDatetime(tzinfo=UTC),
        reasons=reasons,
        changes=list(changes or []),
        reviewed=review is not None,
    )


def notice_pdf(notice: Notice, sacco_name: str = "") -> bytes:
    """The notice as a printable A4 PDF, English then Kiswahili (fpdf2, core fonts only: no
    font files, and both languages are written in Latin letters)."""
    from fpdf import FPDF  # imported on the first PDF: it took a quarter of the gateway's start

    pdf = FPDF(format="A4")
    pdf.compress = False  # a page or two of text: readable bytes, checkable by any tool
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(f"{TITLE['en']} - {notice.application_id}")
    pdf.set_creator("Alama")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for language in ("en", "sw"):
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(width, 8, _latin(TITLE[language]), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        header = (
            f"{sacco_name + ' - ' if sacco_name else ''}application {notice.application_id},"
            f" decided {notice.decided_at:%Y-%m-%d}"
            if language == "en"
            else f"{sacco_name + ' - ' if sacco_name else ''}ombi {notice.application_id},"
            f" uamuzi tarehe {notice.decided_at:%Y-%m-%d}"
        )
        pdf.multi_cell(width, 6, _latin(header), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(width, 6, _latin(DECLINED[language]), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(
            width,
            6,
            "The main reasons:" if language == "en" else "Sababu kuu:",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        for i, reason in enumerate(notice.reasons, 1):
            text = reason.en if language == "en" else reason.sw
            pdf.multi_cell(width, 6, _latin(f"  {i}. {text}"), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        pdf.multi_cell(
            width,
            6,
            "What would change the outcome:"
            if language == "en"
            else "Kinachoweza kubadilisha matokeo:",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        if notice.changes:
            for change in notice.changes:
                text = change.en if language == "en" else change.sw
                pdf.multi_cell(width, 6, _latin(f"  - {text}"), new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.multi_cell(
                width, 6, _latin(f"  {NO_CHANGE[language]}"), new_x="LMARGIN", new_y="NEXT"
            )
        pdf.ln(1)
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(
            width,
            6,
            "How to appeal" if language == "en" else "Jinsi ya kukata rufaa",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(width, 6, _latin(HOW_TO_APPEAL[language]), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
    return bytes(pdf.output())


def _latin(text: str) -> str:
    """The core PDF fonts cover Latin-1: anything else (a curly quote in a reason) is replaced."""
    return (
        text.replace("\u2019", "'")
        .replace("\u2013", "-")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )
