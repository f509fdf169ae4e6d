"""Member profile features: tenure, savings, guarantors, existing debt, bureau listing, income."""

from datetime import timedelta

from entities import member
from feast import FeatureView, Field
from feast.types import Float64
from sources import member_profile_source

from services.common.features import PROFILE_FEATURES

member_profile = FeatureView(
    name="member_profile",
    entities=[member],
    ttl=timedelta(days=62),
    schema=[Field(name=name, dtype=Float64) for name in PROFILE_FEATURES],
    source=member_profile_source,
    online=True,
    description="Monthly profile snapshot from core banking (protected attributes excluded)",
)
