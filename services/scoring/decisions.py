"""Turn a batch of model scores into `CreditDecision` messages (the event and the gRPC answer).

The decision id is a UUID5 of the application id, the model version and the application's
content (`content_digest`), so a replayed application gets the same id and downstream consumers
deduplicate it, while the same application id with other content can never hide behind an
earlier decision's id (`ledger` answers such a request with a conflict).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.bundle import Scores
from services.common.features import TABULAR_FEATURES
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.reasons import reason_codes
from services.common.tabular_bundle import TabularBundle, TabularScores
from services.common.vocabulary import BANDS

#: Fixed forever: changing it would change every decision id.
DECISION_NAMESPACE = uuid.UUID("6f1c2a7e-3b5d-5e8a-9c41-a1a3a0c0de01")


#: what a decision carries for explanation and audit but its caller does not read: the model's
#: inputs and the explanation's material (~5 KB of a decision's ~5.2)
HEAVY_FIELDS = (
    "features",
    "sequences",
    "repayment_attention",
    "mobile_money_attention",
    "contributions",
)


def strip_inputs(decision: CreditDecision) -> CreditDecision:
    """The decision without `HEAVY_FIELDS`, in place: the outcome, its reasons and its ids."""
    for name in HEAVY_FIELDS:
        decision.ClearField(name)
    return decision


def content_digest(application: LoanApplicationSubmitted) -> str:
    """sha256 of what the caller asked for: every field but `applied_at` (the gateway stamps it
    with the time of receipt when the caller leaves it out, so a retry would differ by it)."""
    content = LoanApplicationSubmitted()
    content.CopyFrom(application)
    content.ClearField("applied_at")
    return hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()


def decision_id(application: LoanApplicationSubmitted, model_version: str) -> str:
    """Same application, content and model, same id: replays deduplicate downstream."""
    key = f"{application.application_id}\x1f{model_version}\x1f{content_digest(application)}"
    return str(uuid.uuid5(DECISION_NAMESPACE, key))


def build_decisions(
    applications: Sequence[LoanApplicationSubmitted],
    scores: Scores,
    tabular: np.ndarray,
    contributions: np.ndarray,
    *,
    model_version: str,
    decided_at: datetime,
    max_reasons: int = 4,
    model_columns: np.ndarray | None = None,
    sequences: Mapping[str, np.ndarray] | None = None,
) -> list[CreditDecision]:
    """One decision per application, row-aligned with the scores and feature arrays.

    `sequences` are the LSTM's inputs by name ([N, steps] each); they travel in the decision.

    `contributions` span the whole vocabulary (TABULAR_FEATURES); those of the features the
    model reads (`model_columns`, the bundle's order) travel in the decision for explanation.
    """
    # numpy to Python once per array, not per element: a batch of 1,000 builds in a third of
    # the time (each `float(a[i])` is a numpy scalar made and thrown away)
    carried = None if model_columns is None else contributions[:, model_columns].tolist()
    pds = scores.probability_of_default.tolist()
    points = scores.score.tolist()
    bands = [BANDS.value(str(b)) for b in scores.band.tolist()]
    gbm = scores.gbm_probability.tolist()
    lstm = scores.lstm_probability.tolist()
    repayment = np.asarray(scores.repayment_attention, dtype=np.float64).tolist()
    mobile_money = np.asarray(scores.mobile_money_attention, dtype=np.float64).tolist()
    values = tabular.tolist()
    inputs = {name: v.tolist() for name, v in (sequences or {}).items()}
    decided = Timestamp()
    decided.FromDatetime(decided_at)
    decisions = []
    for i, application in enumerate(applications):
        decision = CreditDecision(
            decision_id=decision_id(application, model_version),
            application_id=application.application_id,
            member_id=application.member_id,
            tenant_id=application.tenant_id,
            model_version=model_version,
            probability_of_default=pds[i],
            score=points[i],
            band=bands[i],  # type: ignore[arg-type]
            reasons=reason_codes(contributions[i], tabular[i], limit=max_reasons),
            features=dict(zip(TABULAR_FEATURES, values[i], strict=True)),
            gbm_probability=gbm[i],
            lstm_probability=lstm[i],
            repayment_attention=repayment[i],
            mobile_money_attention=mobile_money[i],
            contributions=None if carried is None else carried[i],
            decided_at=decided,
        )
        for name, rows in inputs.items():
            decision.sequences[name].values.extend(rows[i])
        if application.HasField("applied_at"):
            decision.applied_at.CopyFrom(application.applied_at)
        decisions.append(decision)
    return decisions


def build_tabular_decisions(
    applications: Sequence[LoanApplicationSubmitted],
    model: TabularBundle,
    scores: TabularScores,
    encoded: np.ndarray,
    contributions: np.ndarray,
    *,
    decided_at: datetime,
    max_reasons: int = 4,
) -> list[CreditDecision]:
    """Decisions of a tabular bundle: its encoded inputs as the features (what drift and the
    explanation read), reasons per source column, no sequence model."""
    names = model.feature_names
    decisions = []
    for i, application in enumerate(applications):
        decision = CreditDecision(
            decision_id=decision_id(application, model.version),
            application_id=application.application_id,
            member_id=application.member_id,
            tenant_id=application.tenant_id,
            model_version=model.version,
            probability_of_default=float(scores.probability_of_default[i]),
            score=int(scores.score[i]),
            band=BANDS.value(str(scores.band[i])),  # type: ignore[arg-type]
            reasons=model.reasons(contributions[i], encoded[i], limit=max_reasons),
            features={name: float(v) for name, v in zip(names, encoded[i], strict=True)},
            gbm_probability=float(scores.model_probability[i]),
            contributions=np.asarray(contributions[i], dtype=np.float64).tolist(),
        )
        decision.decided_at.FromDatetime(decided_at)
        if application.HasField("applied_at"):
            decision.applied_at.CopyFrom(application.applied_at)
        decisions.append(decision)
    return decisions
