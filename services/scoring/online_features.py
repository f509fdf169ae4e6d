"""Read a batch of applications' features from the Feast online store (`credit_scoring_v1`).

The same feature service that training asked for, so serving cannot see different features.
Amount and term come from the request (Feast returns only what it stores or derives).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from services.common.feast_config import FEATURE_SERVICE
from services.common.features import SNAPSHOT_COLUMNS, application_features
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.scoring.applications import PRODUCT_NAMES

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class OnlineBatch:
    """One feature row per application, in request order, and which members Feast knows."""

    features: pd.DataFrame
    known: np.ndarray  # bool [N]: False where the member has no profile online


class FeatureSource(Protocol):
    """Where scoring gets features; Feast in production, a fake in unit tests."""

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch: ...


def entity_rows(applications: Sequence[LoanApplicationSubmitted]) -> list[dict[str, object]]:
    """The entity key plus the request fields the on-demand features need."""
    return [
        {
            "member_id": a.member_id,
            "amount_kes": float(a.amount_kes),
            "term_months": float(a.term_months),
            "product": PRODUCT_NAMES[a.product],
        }
        for a in applications
    ]


class OnlineFeatures:
    """Blocking Feast reads; the scorer calls `fetch` from a worker thread.

    The stored feature views of `credit_scoring_v1` come from Feast's online store; the
    service's on-demand view (`application_ratios`) is applied here with the very function its
    UDF calls (`features.application_features`), because Feast's pandas on-demand machinery
    costs ~10 ms per call, most of a synchronous request's budget. A test checks the result
    equals what Feast's own on-demand path returns.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.service = store.get_feature_service(FEATURE_SERVICE)
        on_demand = {v.name for v in store.list_on_demand_feature_views()}
        self.stored_refs = [
            f"{projection.name_to_use()}:{feature.name}"
            for projection in self.service.feature_view_projections
            if projection.name not in on_demand
            for feature in projection.features
        ]
        self.derived = [
            feature.name
            for projection in self.service.feature_view_projections
            if projection.name in on_demand
            for feature in projection.features
        ]

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        if not applications:
            return OnlineBatch(pd.DataFrame(), np.zeros(0, dtype=bool))
        frame = self.store.get_online_features(
            features=self.stored_refs,
            entity_rows=[{"member_id": a.member_id} for a in applications],
        ).to_df()
        amounts = np.array([a.amount_kes for a in applications], dtype=np.float64)
        terms = np.array([a.term_months for a in applications], dtype=np.float64)
        products = np.array([PRODUCT_NAMES.get(a.product, "") for a in applications])
        derived = application_features(
            amounts, terms, products, frame, frame["mm_inflow_sum_90d"].to_numpy()
        )
        for name in self.derived:
            frame[name] = derived[name].to_numpy()
        frame["amount_kes"] = amounts
        frame["term_months"] = terms
        # a member profile is always materialized for a member Feast knows
        known = frame[list(SNAPSHOT_COLUMNS)].notna().any(axis=1).to_numpy()
        return OnlineBatch(features=frame, known=known)


class FeastOnDemandFeatures(OnlineFeatures):
    """Feast's own on-demand path, kept as the reference the fast path is tested against."""

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        if not applications:
            return OnlineBatch(pd.DataFrame(), np.zeros(0, dtype=bool))
        frame = self.store.get_online_features(
            features=self.service, entity_rows=entity_rows(applications)
        ).to_df()
        frame["amount_kes"] = np.array([a.amount_kes for a in applications], dtype=np.float64)
        frame["term_months"] = np.array([a.term_months for a in applications], dtype=np.float64)
        known = frame[list(SNAPSHOT_COLUMNS)].notna().any(axis=1).to_numpy()
        return OnlineBatch(features=frame, known=known)
