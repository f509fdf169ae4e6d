"""Writes of recomputed feature rows to Feast push sources, off the event loop.

Feast's SDK is blocking (Redis and PostgreSQL clients), so every push runs in a one-thread
executor: the event loop keeps consuming, and pushes stay in order.

That thread was the feature store's bottleneck (a py-spy profile of a 20,000-transaction burst
had it busy all the time, at 380 transactions/s): Feast's `write_to_online_store` turns the
DataFrame into an Arrow table, converts each column back to NumPy and each timestamp through
pandas before it makes its protos. For a plain feature view the pusher now makes the same
rows from the DataFrame's columns with Feast's own converters (`python_values_to_proto_values`,
an `EntityKey` per row) and hands them to the provider's `online_write_batch`, the call
`write_to_online_store` ends in; any other view still goes through `write_to_online_store`.
The integration test compares the Redis hashes both paths write, byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from services.common.feast_config import open_feature_store
from services.feature_store.metrics import MEMBERS_UPDATED, PUSH_SECONDS, PUSHES
from services.feature_store.offline import OfflinePushUnsupported
from services.feature_store.settings import FeatureStoreSettings

if TYPE_CHECKING:
    from datetime import datetime

    from feast import FeatureStore, FeatureView
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.value_type import ValueType

#: how long the views of a push source are reused before the (cached) registry is asked again
VIEWS_TTL_SECONDS = 60.0

log = logging.getLogger(__name__)

__all__ = ["FeastPusher", "FeaturePusher", "OfflinePushUnsupported", "offline_push_supported"]


class FeaturePusher(Protocol):
    async def push(self, push_source: str, rows: pd.DataFrame) -> None:
        """Write one DataFrame of member rows to a push source; raise when it failed."""

    def close(self) -> None: ...


def offline_push_supported(store: FeatureStore) -> bool:
    """Whether the store's offline store implements `offline_write_batch` (Feast's push path).

    Feast 0.67's PostgreSQL offline store does not: its pushes fail with NotImplementedError,
    which is why the offline rows go through `services.feature_store.offline` instead.
    """
    from feast.infra.offline_stores.offline_store import OfflineStore
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    offline = get_offline_store_from_config(store.config.offline_store)
    return type(offline).offline_write_batch is not OfflineStore.offline_write_batch


class FeastPusher:
    """A push source's rows into the online store (Feast's `write_to_online_store` for each of
    its feature views) in a thread, timed and counted per push source.

    Always online only: the offline rows are written apart (`offline.PostgresOfflineWriter`), so
    an offline store that is down or slow never holds back online freshness.
    """

    def __init__(self, store: FeatureStore) -> None:
        from feast.data_source import PushMode

        self.store = store
        self.mode = PushMode.ONLINE
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feast-push")
        self._cache: dict[str, tuple[float, list[tuple[FeatureView, bool]]]] = {}

    @classmethod
    def open(cls, settings: FeatureStoreSettings) -> FeastPusher:
        return cls(open_feature_store(settings.infra, settings.feature_repo_path))

    async def push(self, push_source: str, rows: pd.DataFrame) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, self._push, push_source, rows)
        except Exception:
            PUSHES.labels(push_source, "failed").inc()
            raise
        finally:
            PUSH_SECONDS.labels(push_source).observe(time.perf_counter() - started)
        PUSHES.labels(push_source, "ok").inc()
        MEMBERS_UPDATED.labels(push_source).inc(len(rows))

    def _push(self, push_source: str, rows: pd.DataFrame) -> None:
        # what `FeatureStore.push` does online, without its last step: Feast 0.67 then lists
        # the registry's feature services from the database, uncached, on every push, to
        # refresh precomputed vectors Alama does not use (a fifth of the service's push time)
        if rows.empty:
            return
        for view, plain in self._views(push_source):
            if plain:
                write_rows(self.store, view, rows)
            else:
                # a copy: Feast may reshape the frame the offline write reads meanwhile
                self.store.write_to_online_store(view.name, rows.copy())

    def feature_views(self, push_source: str) -> list[str]:
        """The feature views fed by a push source, from the cached registry."""
        return [v.name for v in self._resolve(push_source)]

    def _views(self, push_source: str) -> list[tuple[FeatureView, bool]]:
        """The push source's views, each with whether it is plain, resolved once a minute."""
        now = time.monotonic()
        cached = self._cache.get(push_source)
        if cached is None or now - cached[0] > VIEWS_TTL_SECONDS:
            cached = (now, [(v, plain_view(v)) for v in self._resolve(push_source)])
            self._cache[push_source] = cached
        return cached[1]

    def _resolve(self, push_source: str) -> list[FeatureView]:
        from feast.data_source import PushSource
        from feast.errors import PushSourceNotFoundException

        views = [
            *self.store.list_feature_views(allow_cache=True),
            *self.store.list_stream_feature_views(allow_cache=True),
        ]
        found = sorted(
            (
                v
                for v in views
                if isinstance(v.stream_source, PushSource) and v.stream_source.name == push_source
            ),
            key=lambda v: v.name,
        )
        if not found:
            raise PushSourceNotFoundException(push_source)
        return found

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def plain_view(view: Any) -> bool:
    """A feature view whose rows need nothing of `write_to_online_store` but the conversion:
    no field mapping, no created timestamp, no transformation on write."""
    from feast import FeatureView

    source = view.batch_source
    return (
        type(view) is FeatureView
        and source is not None
        and not source.field_mapping
        and not source.created_timestamp_column
        and bool(view.entity_columns)
    )


Row = tuple["EntityKeyProto", dict[str, "ValueProto"], "datetime", "datetime | None"]


def online_rows(view: FeatureView, rows: pd.DataFrame) -> list[Row]:
    """The rows `write_to_online_store` would hand the provider for a plain view: an entity key
    per row, each feature's `ValueProto`, the event timestamp as a naive UTC datetime."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    source = view.batch_source
    if source is None:
        raise ValueError(f"feature view {view.name} has no batch source")
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    features = [(f.name, f.dtype.to_value_type()) for f in view.features]
    missing = [c for c in (*join_keys, *(n for n, _t in features)) if c not in rows.columns]
    if missing:
        raise ValueError(f"Column(s) {missing} not found in the rows for {view.name}")
    keys = {k: python_values_to_proto_values(rows[k].to_numpy(), t) for k, t in join_keys.items()}
    values = [proto_values(rows[n].to_numpy(), t) for n, t in features]
    names = [n for n, _t in features]
    column = rows[source.timestamp_field]  # datetimes as they are (naive ones are UTC already)
    stamps = pd.DatetimeIndex(
        column if column.dtype.kind == "M" else pd.to_datetime(column, utc=True)
    )
    naive = (stamps if stamps.tz is None else stamps.tz_convert(None)).to_pydatetime()
    return [
        (
            EntityKey(join_keys=list(join_keys), entity_values=[keys[k][i] for k in join_keys]),
            dict(zip(names, row, strict=True)),
            naive[i],
            None,
        )
        for i, row in enumerate(zip(*values, strict=True))
    ]


def proto_values(values: np.ndarray, kind: ValueType) -> list[ValueProto]:
    """`feast.type_map.python_values_to_proto_values` for a column, built directly for the two
    kinds feature rows hold (doubles, NaN as an unset value; lists of doubles as they are),
    which Feast converts value by value through its generic type checks: a tenth of the
    feature store's time in a burst. Any other kind goes through Feast's own function."""
    from feast.protos.feast.types.Value_pb2 import DoubleList
    from feast.protos.feast.types.Value_pb2 import Value as Proto
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    if kind == ValueType.DOUBLE and values.dtype.kind == "f":
        return [Proto() if v != v else Proto(double_val=v) for v in values.tolist()]
    if kind == ValueType.DOUBLE_LIST and all(type(v) is list for v in values):
        return [Proto(double_list_val=DoubleList(val=v)) for v in values]
    return list(python_values_to_proto_values(values, kind))  # type: ignore[arg-type]


def write_rows(store: FeatureStore, view: FeatureView, rows: pd.DataFrame) -> None:
    """`write_to_online_store` for a plain view, without the Arrow round trip."""
    provider = store._get_provider()  # what write_to_online_store itself writes through
    provider.online_write_batch(store.config, view, online_rows(view, rows), progress=None)
