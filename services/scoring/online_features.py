"""Read a batch of applications' features from the Feast online store (`credit_scoring_v1`).

The same feature service that training asked for, so serving cannot see different features.
Amount and term come from the request (Feast returns only what it stores or derives).

`RedisOnlineFeatures` is the serving path: one pipelined round trip to Feast's Redis online
store for a whole batch (one HMGET per member over every stored view of the service), keys and
values in Feast's own formats through Feast's own functions, numpy arrays out, no DataFrame.
`OnlineFeatures` (Feast's SDK read) and `FeastOnDemandFeatures` (Feast's SDK with its own
on-demand transformation) stay as the references the fast path is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from services.common.feast_config import FEATURE_SERVICE
from services.common.features import (
    APPLICATION_FEATURES,
    MOBILE_MONEY_SEQUENCES,
    MOBILE_MONEY_WEEKS,
    REPAYMENT_MONTHS,
    REPAYMENT_SEQUENCES,
    SNAPSHOT_COLUMNS,
    TABULAR_FEATURES,
    ModelInputs,
    application_arrays,
    model_inputs_from_arrays,
)
from services.common.members import member_key
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.vocabulary import PRODUCTS

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

#: Each sequence feature's number of steps (its array's width).
SEQUENCE_STEPS: dict[str, int] = {name: REPAYMENT_MONTHS for name in REPAYMENT_SEQUENCES} | {
    name: MOBILE_MONEY_WEEKS for name in MOBILE_MONEY_SEQUENCES
}
#: What the online store holds for scoring: every tabular feature but the application's own.
STORED_FEATURES = tuple(f for f in TABULAR_FEATURES if f not in APPLICATION_FEATURES)
_SNAPSHOT = np.array([TABULAR_FEATURES.index(f) for f in SNAPSHOT_COLUMNS])


@dataclass(frozen=True)
class OnlineBatch:
    """One feature row per application, in request order, and which members Feast knows."""

    tabular: np.ndarray  # float64 [N, len(TABULAR_FEATURES)], NaN where Feast has no value
    sequences: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> [N, steps]
    known: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def unknown(cls, n: int) -> OnlineBatch:
        """N members the online store does not know."""
        return cls(
            np.full((n, len(TABULAR_FEATURES)), np.nan),
            {name: np.zeros((n, steps)) for name, steps in SEQUENCE_STEPS.items()},
            np.zeros(n, dtype=bool),
        )

    def sequences_of(self, rows: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The raw sequence arrays of these rows (what the decision carries)."""
        picked = np.asarray(rows, dtype=np.int64)
        return {name: seq[picked] for name, seq in self.sequences.items()}

    def model_inputs(self, rows: Sequence[int] | np.ndarray) -> ModelInputs:
        """Both models' inputs for these rows."""
        picked = np.asarray(rows, dtype=np.int64)
        return model_inputs_from_arrays(
            self.tabular[picked], {name: seq[picked] for name, seq in self.sequences.items()}
        )


class FeatureSource(Protocol):
    """Where scoring gets features; Feast in production, a fake in unit tests."""

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch: ...


def assemble(
    applications: Sequence[LoanApplicationSubmitted],
    stored: Mapping[str, np.ndarray],
    sequences: Mapping[str, np.ndarray],
) -> OnlineBatch:
    """The batch from the stored features (float64 [N] per name, NaN where missing) and the
    request: the on-demand view's features by the very function its Feast UDF calls
    (`features.application_arrays`), amount and term as the caller sent them."""
    amounts = np.array([a.amount_kes for a in applications], dtype=np.float64)
    terms = np.array([a.term_months for a in applications], dtype=np.float64)
    products = np.array([PRODUCTS.name_or(a.product, "") for a in applications])
    derived = application_arrays(amounts, terms, products, stored, stored["mm_inflow_sum_90d"])
    derived["amount_kes"], derived["term_months"] = amounts, terms
    tabular = np.empty((len(applications), len(TABULAR_FEATURES)))
    for j, name in enumerate(TABULAR_FEATURES):
        tabular[:, j] = stored[name] if name in stored else derived[name]
    # a member profile is always materialized for a member Feast knows
    known = np.asarray(~np.isnan(tabular[:, _SNAPSHOT]).all(axis=1))
    return OnlineBatch(tabular, dict(sequences), known)


@dataclass(frozen=True)
class _View:
    """One stored feature view of the service: its features' slots in the HMGET reply."""

    name: str
    features: tuple[str, ...]
    start: int  # the first feature's position among the fields asked for


class RedisOnlineFeatures:
    """Feast's Redis online store read directly: one pipeline, one round trip, per batch.

    What Feast's `get_online_features` does for these views, without the response protos,
    the per-view grouping and the DataFrame: the entity key is Feast's `_redis_key` (its
    `serialize_entity_key` plus the project), each feature's hash field is Feast's `_mmh3` of
    `<view>:<feature>`, and each value a Feast `ValueProto` turned into Python by Feast's own
    `feast_value_type_to_python_type`. Every view of the service is keyed by the member alone,
    so one HMGET per distinct member reads all of them. Feast's Redis read does not apply a
    view's `ttl` (only its precomputed-vector path does), so neither does this one: a test pins
    that it returns exactly what the SDK returns, stale rows included.
    The views are resolved once, at start-up, as the bundle is.
    """

    def __init__(self, store: FeatureStore, client: Any | None = None) -> None:
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import (
            RedisOnlineStore,
            RedisOnlineStoreConfig,
            _versioned_fv_name,
        )

        config = store.config
        if not isinstance(config.online_store, RedisOnlineStoreConfig):
            raise TypeError(f"Feast's online store is {config.online_store.type}, not Redis")
        self.project = config.project
        self.key_version = config.entity_key_serialization_version
        service = store.get_feature_service(FEATURE_SERVICE)
        on_demand = {v.name for v in store.list_on_demand_feature_views()}
        fields: list[bytes] = []
        views: list[_View] = []
        join_keys: set[tuple[str, ...]] = set()
        for projection in service.feature_view_projections:
            if projection.name in on_demand:
                continue
            view = store.get_feature_view(projection.name)
            join_keys.add(tuple(sorted(view.join_keys)))
            name = _versioned_fv_name(view, config)
            features = tuple(
                f.name
                for f in projection.features
                if f.name in STORED_FEATURES or f.name in SEQUENCE_STEPS
            )
            views.append(_View(name, features, len(fields)))
            fields.extend(_mmh3(f"{name}:{f}") for f in features)
        if len(join_keys) != 1 or len(next(iter(join_keys))) != 1:
            raise ValueError(f"the service's views are not keyed by one entity: {join_keys}")
        (self.join_key,) = next(iter(join_keys))
        self.views = tuple(views)
        self.fields = fields
        #: per field: its column in STORED_FEATURES, or the sequence it holds
        self.slots: tuple[tuple[int, str | None], ...] = tuple(
            (-1, name) if name in SEQUENCE_STEPS else (STORED_FEATURES.index(name), None)
            for view in views
            for name in view.features
        )
        read = {f for v in views for f in v.features}
        lacking = [f for f in (*STORED_FEATURES, *SEQUENCE_STEPS) if f not in read]
        if lacking:
            raise ValueError(f"{FEATURE_SERVICE} does not serve {lacking}")
        self.client = client or RedisOnlineStore()._get_client(config.online_store)

    def redis_key(self, member_id: str) -> bytes:
        """The member's hash in Feast's Redis online store."""
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        entity = EntityKey(
            join_keys=[self.join_key], entity_values=[ValueProto(string_val=member_id)]
        )
        return _redis_key(self.project, entity, entity_key_serialization_version=self.key_version)

    def read(self, member_ids: Sequence[str]) -> list[list[bytes | None]]:
        """Every field for each member, in order, in one pipelined round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            for member in member_ids:
                pipe.hmget(self.redis_key(member), self.fields)
            replies: list[list[bytes | None]] = pipe.execute()
        return replies

    def stored(
        self, member_ids: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The stored scalar features (float64 [N], NaN where missing) and sequences
        ([N, steps], zeros where missing) of these members; a member read once however often
        it appears."""
        unique: dict[str, int] = {}
        rows = np.array([unique.setdefault(m, len(unique)) for m in member_ids], dtype=np.int64)
        return self.decode(self.read(list(unique)), rows)

    def decode(
        self, replies: Sequence[Sequence[bytes | None]], rows: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """`read`'s replies (one per distinct member) as arrays, row i from reply `rows[i]`."""
        scalars = np.full((len(replies), len(STORED_FEATURES)), np.nan)
        sequences = {name: np.zeros((len(replies), s)) for name, s in SEQUENCE_STEPS.items()}
        for u, reply in enumerate(replies):
            row = scalars[u]
            for (column, sequence), raw in zip(self.slots, reply, strict=True):
                if raw is None:
                    continue
                value = _python_value(raw)
                if value is None:
                    continue
                if sequence is None:
                    row[column] = value
                else:
                    sequences[sequence][u] = value
        return (
            {name: scalars[rows, j] for j, name in enumerate(STORED_FEATURES)},
            {name: values[rows] for name, values in sequences.items()},
        )

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        if not applications:
            return OnlineBatch.unknown(0)
        scalars, sequences = self.stored([feature_key(a) for a in applications])
        return assemble(applications, scalars, sequences)


#: `ValueProto` kinds that Feast's `feast_value_type_to_python_type` returns as they are (a
#: scalar) or as the list of their `val` (a list); any other kind goes through that function.
_SCALAR_KINDS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val"})
_LIST_KINDS = frozenset({"double_list_val", "float_list_val", "int64_list_val", "int32_list_val"})


def _python_value(raw: bytes) -> Any:
    """A stored Feast value as Feast's SDK gives it to Python (None when unset)."""
    value = ValueProto.FromString(raw)
    kind = value.WhichOneof("val")
    if kind in _SCALAR_KINDS:
        return getattr(value, kind)
    if kind in _LIST_KINDS:
        return list(getattr(value, kind).val)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


def feature_key(application: LoanApplicationSubmitted) -> str:
    """The applicant's key in Feast: its tenant's member (validated by `applications.validate`)."""
    return member_key(application.tenant_id, application.member_id)


def entity_rows(applications: Sequence[LoanApplicationSubmitted]) -> list[dict[str, object]]:
    """The entity key plus the request fields the on-demand features need."""
    return [
        {
            "member_id": feature_key(a),
            "amount_kes": float(a.amount_kes),
            "term_months": float(a.term_months),
            "product": PRODUCTS.name_or(a.product, ""),
        }
        for a in applications
    ]


def batch_from_frame(frame: pd.DataFrame) -> OnlineBatch:
    """A reference path's DataFrame (every tabular feature and sequence by name) as a batch."""
    missing = [f for f in (*TABULAR_FEATURES, *SEQUENCE_STEPS) if f not in frame.columns]
    if missing:
        raise KeyError(f"features missing: {missing}")
    tabular = frame[list(TABULAR_FEATURES)].to_numpy(dtype=np.float64)
    sequences = {
        name: np.vstack(
            [np.zeros(steps) if v is None else np.asarray(v, dtype=np.float64) for v in frame[name]]
        )
        if len(frame)
        else np.zeros((0, steps))
        for name, steps in SEQUENCE_STEPS.items()
    }
    known = frame[list(SNAPSHOT_COLUMNS)].notna().any(axis=1).to_numpy()
    return OnlineBatch(tabular, sequences, known)


class OnlineFeatures:
    """Feast's SDK read (`get_online_features(...).to_df()`), the reference of the fast path.

    The stored feature views of `credit_scoring_v1` come from Feast's online store; the
    service's on-demand view (`application_ratios`) is applied here with the very function its
    UDF calls (`features.application_features`), because Feast's pandas on-demand machinery
    costs ~10 ms per call. A test checks the result equals what Feast's own on-demand path
    returns.
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

    def stored_frame(self, member_ids: Sequence[str]) -> pd.DataFrame:
        """What Feast's SDK returns for the stored views of these members."""
        return self.store.get_online_features(
            features=self.stored_refs, entity_rows=[{"member_id": m} for m in member_ids]
        ).to_df()

    def frame(self, applications: Sequence[LoanApplicationSubmitted]) -> pd.DataFrame:
        from services.common.features import application_features

        frame = self.stored_frame([feature_key(a) for a in applications])
        amounts = np.array([a.amount_kes for a in applications], dtype=np.float64)
        terms = np.array([a.term_months for a in applications], dtype=np.float64)
        products = np.array([PRODUCTS.name_or(a.product, "") for a in applications])
        derived = application_features(
            amounts, terms, products, frame, frame["mm_inflow_sum_90d"].to_numpy()
        )
        for name in self.derived:
            frame[name] = derived[name].to_numpy()
        frame["amount_kes"] = amounts
        frame["term_months"] = terms
        return frame

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        if not applications:
            return OnlineBatch.unknown(0)
        return batch_from_frame(self.frame(applications))


class FeastOnDemandFeatures(OnlineFeatures):
    """Feast's own on-demand path, kept as the reference the application features are tested
    against."""

    def frame(self, applications: Sequence[LoanApplicationSubmitted]) -> pd.DataFrame:
        frame = self.store.get_online_features(
            features=self.service, entity_rows=entity_rows(applications)
        ).to_df()
        frame["amount_kes"] = np.array([a.amount_kes for a in applications], dtype=np.float64)
        frame["term_months"] = np.array([a.term_months for a in applications], dtype=np.float64)
        return frame
