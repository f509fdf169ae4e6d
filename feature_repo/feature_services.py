"""The versioned feature service that training and scoring both ask for."""

from application import application_ratios
from bureau import bureau_summary
from feast import FeatureService
from member_profile import member_profile
from mobile_money import mobile_money_aggregates, mobile_money_sequence
from repayments import repayment_history

credit_scoring_v1 = FeatureService(
    name="credit_scoring_v1",
    features=[
        member_profile,
        mobile_money_aggregates,
        mobile_money_sequence,
        repayment_history,
        bureau_summary,
        application_ratios,
    ],
    description="The feature vocabulary every bundle picks its inputs from (bundle format 1)",
)
