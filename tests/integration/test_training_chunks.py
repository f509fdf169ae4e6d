"""Loading Feast and taking the training set out of it in chunks gives what one piece would:
the same offline rows, the same point-in-time training set, the same model inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.common import features as F
from services.common.settings import InfraSettings
from tests.integration.feast_projects import feast_project
from training import feature_tables, pipeline
from training.contract import LoanBook
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

WHOLE = 10**9


@pytest.fixture(scope="module")
def book() -> LoanBook:
    return loan_book_from_world(generate_world(300, seed=23))


def same_training_sets(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    for column in a.columns:
        if a[column].dtype == object and column in {
            *F.REPAYMENT_SEQUENCES,
            *F.MOBILE_MONEY_SEQUENCES,
        }:
            np.testing.assert_array_equal(
                np.stack(a[column].to_numpy()), np.stack(b[column].to_numpy())
            )
        else:
            pd.testing.assert_series_equal(a[column], b[column])


def test_chunked_load_and_queries_give_the_whole_training_set(
    infra: InfraSettings, book: LoanBook
) -> None:
    quiet = {"echo": lambda _line: None}
    with feast_project("training_chunks"):
        pipeline.load_into_feast(infra, book, members_per_chunk=WHOLE, **quiet)
        whole = feature_tables.training_set(infra, book, applications_per_query=WHOLE)
        pipeline.load_into_feast(
            infra, book, members_per_chunk=80, workers=1, materialize=False, **quiet
        )
        one_process = feature_tables.training_set(infra, book, applications_per_query=WHOLE)
        pipeline.load_into_feast(infra, book, members_per_chunk=80, workers=2, **quiet)
        loaded_in_chunks = feature_tables.training_set(infra, book, applications_per_query=WHOLE)
        queried_in_chunks = feature_tables.training_set(infra, book, applications_per_query=90)
        scalars, inputs = feature_tables.training_inputs(infra, book, applications_per_query=90)
    assert whole["application_id"].tolist() == book.labelled["application_id"].tolist()
    # several chunks of each kind, or the comparison would not bite
    assert len(whole) > 2 * 90 and book.table("members")["member_id"].nunique() > 2 * 80
    same_training_sets(whole, one_process)
    same_training_sets(whole, loaded_in_chunks)
    same_training_sets(whole, queried_in_chunks)
    expected = F.model_inputs(whole)
    for name in ("tabular", "static", "repayments", "repayment_mask", "mobile_money"):
        np.testing.assert_array_equal(getattr(inputs, name), getattr(expected, name), err_msg=name)
    np.testing.assert_array_equal(inputs.mobile_money_mask, expected.mobile_money_mask)
    assert not {*F.REPAYMENT_SEQUENCES, *F.MOBILE_MONEY_SEQUENCES} & set(scalars.columns)
    pd.testing.assert_frame_equal(scalars, whole[list(scalars.columns)])
    # the bundle's training-data hash reads the scalar columns only: chunking leaves it alone
    assert pipeline.training_data_hash(scalars) == pipeline.training_data_hash(whole)
