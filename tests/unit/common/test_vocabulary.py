"""The enum names come from the protos, both ways, for every enum the product names."""

from __future__ import annotations

import pytest

from services.common.protos.alama.events.v1.applications_pb2 import LoanProduct
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.vocabulary import (
    BANDS,
    CHANNELS,
    EXPLAINERS,
    PRODUCTS,
    TRANSACTION_KINDS,
    UnknownName,
    Vocabulary,
)


def test_names_round_trip_through_the_proto_values() -> None:
    for vocabulary in (PRODUCTS, CHANNELS, BANDS, TRANSACTION_KINDS, EXPLAINERS):
        assert vocabulary.names, vocabulary.prefix
        for name in vocabulary:
            assert vocabulary.name(vocabulary.value(name)) == name
    assert PRODUCTS.value("school_fees") == LoanProduct.LOAN_PRODUCT_SCHOOL_FEES
    assert BANDS.name(DecisionBand.DECISION_BAND_DECLINE) == "decline"
    assert BANDS.names == ("approve", "review", "decline")


def test_unspecified_and_unknown_values_have_no_name() -> None:
    assert PRODUCTS.name(LoanProduct.LOAN_PRODUCT_UNSPECIFIED) is None
    assert "unspecified" not in PRODUCTS
    assert BANDS.name(99) is None and BANDS.name_or(99, "unspecified") == "unspecified"


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownName, match="school_fees"):
        PRODUCTS.value("mortgage")


def test_a_prefix_that_does_not_fit_the_enum_is_refused() -> None:
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(LoanProduct, "CHANNEL_")
