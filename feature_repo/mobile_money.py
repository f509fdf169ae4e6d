"""Mobile-money aggregates over 7, 30 and 90 days and the 13-week sequence as arrays."""

from datetime import timedelta

from entities import member
from feast import FeatureView, Field
from feast.types import Array, Float64
from sources import mobile_money_push

from services.common.features import MOBILE_MONEY_AGGREGATES, MOBILE_MONEY_SEQUENCES

mobile_money_aggregates = FeatureView(
    name="mobile_money_aggregates",
    entities=[member],
    ttl=timedelta(days=45),
    schema=[Field(name=name, dtype=Float64) for name in MOBILE_MONEY_AGGREGATES],
    source=mobile_money_push,
    online=True,
)
mobile_money_sequence = FeatureView(
    name="mobile_money_sequence",
    entities=[member],
    ttl=timedelta(days=45),
    schema=[Field(name=name, dtype=Array(Float64)) for name in MOBILE_MONEY_SEQUENCES],
    source=mobile_money_push,
    online=True,
)
