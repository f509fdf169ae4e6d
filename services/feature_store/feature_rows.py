"""Feature rows for Feast push sources, computed by the one shared feature definition.

Training builds its offline tables with `services.common.features.mobile_money_features` and
`repayment_features`; this module calls the same functions on the members' streamed activity,
so a pushed row is exactly what training would compute from the same events at the same as-of.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from services.common import features as F
from services.feature_store.activity import (
    RepaymentHistory,
    WalletHistory,
    repayments_frame,
    transactions_frame,
)

SEQUENCE_COLUMNS = frozenset((*F.MOBILE_MONEY_SEQUENCES, *F.REPAYMENT_SEQUENCES))


def as_of_series(as_of_ns: Mapping[str, int]) -> pd.Series:
    """Member id -> as-of instant (UTC), the shape the feature functions take."""
    members = list(as_of_ns)
    stamps = pd.to_datetime(np.array([as_of_ns[m] for m in members], dtype=np.int64), utc=True)
    return pd.Series(stamps, index=pd.Index(members, dtype="object"))


def mobile_money_rows(
    histories: Sequence[WalletHistory], as_of_ns: Mapping[str, int]
) -> pd.DataFrame:
    """One mobile_money_push row per member: member_id, event_timestamp (= as-of), features."""
    as_of = as_of_series(as_of_ns)
    return _rows(F.mobile_money_features(transactions_frame(histories), as_of), as_of)


def repayment_rows(
    histories: Sequence[RepaymentHistory], as_of_ns: Mapping[str, int]
) -> pd.DataFrame:
    """One repayment_push row per member: member_id, event_timestamp (= as-of), features."""
    as_of = as_of_series(as_of_ns)
    return _rows(F.repayment_features(repayments_frame(histories), as_of), as_of)


def _rows(features: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """The layout of training's offline tables, sequences as plain lists of floats."""
    frame = features.copy()
    for name in frame.columns:
        if name in SEQUENCE_COLUMNS:
            frame[name] = _float_lists(frame[name])
    frame.insert(0, "event_timestamp", as_of.to_numpy())
    return frame.reset_index(names="member_id")


def _float_lists(column: pd.Series) -> list[list[float]]:
    """Each member's sequence as a list of floats: one 2-D conversion for the column when the
    sequences have one length (they do: a feature's width is fixed), not one per member."""
    values = list(column)
    if values and len({np.shape(v) for v in values}) == 1:
        return cast(list[list[float]], np.asarray(values, dtype=np.float64).tolist())
    return [np.asarray(v, dtype=np.float64).tolist() for v in values]


def owed_rows(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Member id -> its row as plain JSON (as-of in nanoseconds, NaN as None), the form a row
    owed to the offline store waits in the member's state (`History.offline`)."""
    out: dict[str, dict[str, Any]] = {}
    stamps = pd.DatetimeIndex(pd.to_datetime(rows["event_timestamp"], utc=True)).asi8
    for i, record in enumerate(rows.to_dict("records")):
        row = {name: _json_value(value) for name, value in record.items()}
        row["event_timestamp"] = int(stamps[i])
        out[str(record["member_id"])] = row
    return out


def owed_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows kept by `owed_rows` back in the layout `mobile_money_rows` gives."""
    frame = pd.DataFrame(list(rows))
    frame["event_timestamp"] = pd.to_datetime(
        frame["event_timestamp"].astype(np.int64), unit="ns", utc=True
    )
    for name in frame.columns:
        if name in SEQUENCE_COLUMNS:
            frame[name] = [np.asarray(v, dtype=np.float64).tolist() for v in frame[name]]
        elif name not in ("member_id", "event_timestamp"):
            frame[name] = frame[name].astype(np.float64)  # None (a NaN kept as JSON) is NaN
    return frame


def _json_value(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value
