"""What makes a loan application scoreable, and why one is not (per-application rejections)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from services.common.members import KEY_SEPARATOR, TENANT_PATTERN
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.vocabulary import PRODUCTS


class RejectionCode(StrEnum):
    """Also the dead-letter reason on the Kafka path."""

    UNKNOWN_MEMBER = "unknown_member"
    INVALID_APPLICATION = "invalid_application"
    #: the application id was already decided with other content
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Rejection:
    """An application that cannot be scored; retrying it unchanged fails the same way."""

    application_id: str
    code: RejectionCode
    message: str


def invalid_reasons(application: LoanApplicationSubmitted) -> list[str]:
    """Everything wrong with an application, in words a caller can act on; empty when valid."""
    problems = []
    if not application.application_id.strip():
        problems.append("application_id is missing")
    if not application.member_id.strip():
        problems.append("member_id is missing")
    elif KEY_SEPARATOR in application.member_id:
        problems.append(f"member_id must not contain {KEY_SEPARATOR!r}")
    if not re.fullmatch(TENANT_PATTERN, application.tenant_id):
        problems.append("tenant_id is missing or malformed: a member is always a tenant's")
    if not application.amount_kes > 0:  # also catches NaN
        problems.append(f"amount_kes must be positive, got {application.amount_kes}")
    if application.term_months <= 0:
        problems.append(f"term_months must be positive, got {application.term_months}")
    if PRODUCTS.name(application.product) is None:
        problems.append("product is missing or unknown")
    return problems


def validate(application: LoanApplicationSubmitted) -> Rejection | None:
    """A rejection for an invalid application, None for one worth a feature lookup."""
    problems = invalid_reasons(application)
    if not problems:
        return None
    return Rejection(
        application_id=application.application_id,
        code=RejectionCode.INVALID_APPLICATION,
        message="; ".join(problems),
    )
