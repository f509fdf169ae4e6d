"""The versioned feature service that training and scoring both ask for."""

from application import application_ratios
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
        application_ratios,
    ],
    description="Every input of the GBM + LSTM ensemble, bundle format 1",
)
