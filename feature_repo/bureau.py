"""Credit reference bureau features: accounts, balances, arrears and listings at other lenders.

Batch only: bureau reports arrive with a lender's export (or a CRB pull), not as a stream, so
training writes the offline table and its load copies each member's latest values online.
"""

from datetime import timedelta

from entities import member
from feast import FeatureView, Field
from feast.types import Float64
from sources import bureau_source

from services.common.features import BUREAU_FEATURES

bureau_summary = FeatureView(
    name="bureau_summary",
    entities=[member],
    ttl=timedelta(days=400),
    schema=[Field(name=name, dtype=Float64) for name in BUREAU_FEATURES],
    source=bureau_source,
    online=True,
    description="Each bureau account's latest report, summed per member",
)
