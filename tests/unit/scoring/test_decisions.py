"""Decision ids and decision messages built from scores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np

from services.common.bundle import Scores
from services.common.features import TABULAR_FEATURES
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.scoring.decisions import build_decisions, content_digest, decision_id


def _app(application_id: str, **fields: object) -> LoanApplicationSubmitted:
    values: dict[str, object] = {"member_id": "M1", "amount_kes": 5000.0, "term_months": 6}
    return LoanApplicationSubmitted(application_id=application_id, **(values | fields))  # type: ignore[arg-type]


def test_decision_id_covers_application_content_and_model() -> None:
    first = decision_id(_app("A0000001"), "quick-1")
    assert first == decision_id(_app("A0000001"), "quick-1")
    assert uuid.UUID(first).version == 5
    assert first != decision_id(_app("A0000002"), "quick-1")
    assert first != decision_id(_app("A0000001"), "quick-2")
    # other content under the same application id is another decision
    assert first != decision_id(_app("A0000001", amount_kes=5001.0), "quick-1")
    assert first != decision_id(_app("A0000001", attributes={"x": "1"}), "quick-1")
    # the time the gateway stamped on a retry is not content
    later = _app("A0000001")
    later.applied_at.FromDatetime(datetime(2026, 5, 1, tzinfo=UTC))
    assert first == decision_id(later, "quick-1")
    assert content_digest(later) == content_digest(_app("A0000001"))
    # no ambiguity from concatenation
    assert decision_id(_app("A1"), "2x") != decision_id(_app("A12"), "x")


def test_build_decisions_carries_scores_features_and_reasons() -> None:
    n = 2
    apps = [
        LoanApplicationSubmitted(
            application_id=f"A{i}", member_id=f"M{i}", amount_kes=1000.0, tenant_id="sacco-a"
        )
        for i in range(n)
    ]
    scores = Scores(
        probability_of_default=np.array([0.05, 0.4]),
        score=np.array([700, 480]),
        band=np.array(["approve", "decline"]),
        gbm_probability=np.array([0.04, 0.5]),
        lstm_probability=np.array([0.06, 0.3]),
        repayment_attention=np.zeros((n, 24)),
        mobile_money_attention=np.zeros((n, 13)),
    )
    tabular = np.zeros((n, len(TABULAR_FEATURES)))
    late = TABULAR_FEATURES.index("rp_late_count_6m")
    tabular[1, late] = 3
    contributions = np.zeros_like(tabular)
    contributions[1, late] = 0.8
    at = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = build_decisions(
        apps, scores, tabular, contributions, model_version="v1", decided_at=at
    )
    assert [d.decision_id for d in decisions] == [decision_id(a, "v1") for a in apps]
    assert [d.band for d in decisions] == [
        DecisionBand.DECISION_BAND_APPROVE,
        DecisionBand.DECISION_BAND_DECLINE,
    ]
    assert decisions[1].probability_of_default == 0.4 and decisions[1].score == 480
    assert {d.tenant_id for d in decisions} == {"sacco-a"}  # only its tenant reads it
    assert decisions[1].gbm_probability == 0.5 and decisions[1].lstm_probability == 0.3
    assert set(decisions[0].features) == set(TABULAR_FEATURES)
    assert list(decisions[0].reasons) == []
    assert [r.description for r in decisions[1].reasons] == [
        "3 late repayments in the last 6 months"
    ]
    assert decisions[1].decided_at.ToDatetime(tzinfo=UTC) == at
