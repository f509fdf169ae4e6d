"""On-demand features computed at application time from the request and the member profile."""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String
from member_profile import member_profile
from mobile_money import mobile_money_aggregates

from services.common.features import ON_DEMAND_FEATURES

application_request = RequestSource(
    name="application_request",
    schema=[
        Field(name="amount_kes", dtype=Float64),
        Field(name="term_months", dtype=Float64),
        Field(name="product", dtype=String),
    ],
)


@on_demand_feature_view(
    sources=[member_profile, mobile_money_aggregates, application_request],
    schema=[Field(name=name, dtype=Float64) for name in ON_DEMAND_FEATURES],
    mode="pandas",
)
def application_ratios(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function's source and runs it elsewhere: import inside the body.
    from services.common.features import application_features

    features = application_features(
        inputs["amount_kes"],
        inputs["term_months"],
        inputs["product"],
        inputs,
        inputs["mm_inflow_sum_90d"],
    )
    return features.drop(columns=["amount_kes", "term_months"]).set_index(inputs.index)
