"""On-demand features computed at application time from the request and the member profile."""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String
from member_profile import member_profile

from services.common.features import PRODUCTS

application_request = RequestSource(
    name="application_request",
    schema=[
        Field(name="amount_kes", dtype=Float64),
        Field(name="term_months", dtype=Float64),
        Field(name="product", dtype=String),
    ],
)

RATIOS = ("loan_to_income", "instalment_to_income", "loan_to_deposits")


@on_demand_feature_view(
    sources=[member_profile, application_request],
    schema=[
        *(Field(name=name, dtype=Float64) for name in RATIOS),
        *(Field(name=f"product_{p}", dtype=Float64) for p in PRODUCTS),
    ],
    mode="pandas",
)
def application_ratios(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function's source and runs it elsewhere: import inside the body.
    from services.common.features import application_features

    features = application_features(
        inputs["amount_kes"],
        inputs["term_months"],
        inputs["product"],
        inputs["monthly_income_kes"],
        inputs["deposits_kes"],
    )
    return features.drop(columns=["amount_kes", "term_months"]).set_index(inputs.index)
