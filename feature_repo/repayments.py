"""Repayment history: the 24-month sequence as arrays and the aggregates derived from it."""

from datetime import timedelta

from entities import member
from feast import FeatureView, Field
from feast.types import Array, Float64
from sources import repayment_push

from services.common.features import REPAYMENT_AGGREGATES, REPAYMENT_SEQUENCES

repayment_history = FeatureView(
    name="repayment_history",
    entities=[member],
    ttl=timedelta(days=62),
    schema=[
        *(Field(name=name, dtype=Float64) for name in REPAYMENT_AGGREGATES),
        *(Field(name=name, dtype=Array(Float64)) for name in REPAYMENT_SEQUENCES),
    ],
    source=repayment_push,
    online=True,
)
