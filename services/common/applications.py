"""An application as an event on loan.applications: one builder for the gateway (an application
queued for the scoring consumer) and scoring (one it decided synchronously, recorded after), so
both paths put the same event under the same id and every consumer deduplicates them as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.common.envelope import wrap
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope

#: The namespace of the deterministic (uuid5) ids of what enters Alama from outside: an
#: application or a provider's transaction retried keeps its event id.
EVENT_NAMESPACE = uuid.UUID("0b7c3d52-9f4e-5a61-8e2d-6a1f0c9b4e17")

#: The header of an application scoring decided synchronously and recorded after: its decision's
#: id (the payload's `decision_id` says the same). The scoring consumer, which has nothing to do
#: for such a record, sees it without decoding the payload; every other reader decodes it anyway.
DECIDED_HEADER = "alama-decided"


def decided_header(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether a record's headers mark it as an application already decided."""
    return any(key == DECIDED_HEADER and value for key, value in headers or ())


def application_event_id(tenant: str, application_id: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"application/{tenant}/{application_id}"))


def application_envelope(application: LoanApplicationSubmitted, *, producer: str) -> EventEnvelope:
    """The application of its tenant, keyed by member (each member's events stay in order)."""
    return wrap(
        application,
        producer=producer,
        subject=application.member_id,
        event_id=application_event_id(application.tenant_id, application.application_id),
        # occurred now, whatever applied_at says: the pipeline's latency is measured from here
    )
