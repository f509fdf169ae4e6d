"""Real-data benchmark: loaders give clean numeric data; the pipeline runs and scores sensibly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from training.realdata import (
    CREDIT_SCORING,
    GERMAN,
    MODELS,
    RealDataResult,
    encode_features,
    load_credit_scoring,
    load_german_credit,
    run_benchmark,
    to_markdown,
)


@pytest.fixture(scope="module")
def german() -> tuple[pd.DataFrame, np.ndarray]:
    return load_german_credit()


@pytest.fixture(scope="module")
def credit_scoring() -> tuple[pd.DataFrame, np.ndarray]:
    return load_credit_scoring()


@pytest.fixture(scope="module")
def credit_scoring_result(credit_scoring: tuple[pd.DataFrame, np.ndarray]) -> RealDataResult:
    x, y = credit_scoring
    return run_benchmark(CREDIT_SCORING, x, y, seed=7, gbm_trials=2)


def _assert_clean(x: pd.DataFrame, y: np.ndarray, rows: int) -> None:
    assert x.shape[0] == rows == y.shape[0]
    assert all(pd.api.types.is_float_dtype(dtype) for dtype in x.dtypes)
    assert not x.isna().to_numpy().any()
    assert x.columns.is_unique
    assert set(np.unique(y)) == {0, 1}


def test_german_credit_is_numeric_and_30_percent_bad(german: tuple[pd.DataFrame, np.ndarray]):
    x, y = german
    _assert_clean(x, y, 1000)
    assert y.mean() == pytest.approx(0.30)
    assert not any(c.startswith(("personal_status_and_sex", "age_in_years")) for c in x.columns)


def test_german_credit_can_keep_protected_columns_for_audits():
    x, _ = load_german_credit(include_protected=True)
    assert "age_in_years" in x.columns
    assert any(c.startswith("personal_status_and_sex__") for c in x.columns)


def test_credit_scoring_fills_gaps_and_flags_them(
    credit_scoring: tuple[pd.DataFrame, np.ndarray],
):
    x, y = credit_scoring
    _assert_clean(x, y, 4454)
    assert y.mean() == pytest.approx(0.28, abs=0.01)
    assert "age" not in x.columns
    # Income is the column with the most gaps in the source; they are flagged, not dropped.
    assert x["income__missing"].sum() > 0
    assert set(np.unique(x["income__missing"])) == {0.0, 1.0}


def test_encode_features_one_hots_categoricals_and_flags_numeric_gaps():
    frame = pd.DataFrame(
        {
            "status": pd.Categorical(["... < 0 DM", "... >= 200 DM", None]),
            "income": [100.0, np.nan, 300.0],
            "age": [30, 40, 50],
        }
    )
    encoded = encode_features(frame)
    assert list(encoded.columns) == [
        "status__lt_0_dm",
        "status__ge_200_dm",
        "status__missing",
        "income",
        "income__missing",
        "age",
    ]
    assert encoded["income"].tolist() == [100.0, 200.0, 300.0]
    assert encoded["income__missing"].tolist() == [0.0, 1.0, 0.0]
    assert encoded["status__missing"].tolist() == [0.0, 0.0, 1.0]


def test_benchmark_metrics_are_in_valid_ranges(credit_scoring_result: RealDataResult):
    r = credit_scoring_result
    assert (r.dataset, r.rows, r.features) == (CREDIT_SCORING, 4454, 31)
    assert r.default_rate == pytest.approx(0.28, abs=0.01)
    assert set(r.test) == set(MODELS)
    for metrics in r.test.values():
        assert set(metrics) >= {"auc", "ks", "brier", "ece"}
        assert 0.0 <= metrics["ks"] <= 1.0
        assert 0.0 < metrics["brier"] < 0.25  # 0.25 is a coin flip; the base rate gives ~0.20
        assert 0.0 <= metrics["ece"] < 0.2
    assert r.test["logistic_scorecard"]["auc"] > 0.7
    assert r.test["lightgbm"]["auc"] > 0.7
    assert r.calibrator in {"isotonic", "platt"}
    low, high = r.score_range
    assert 300 <= low < high <= 900


def test_benchmark_is_reproducible_for_a_seed(german: tuple[pd.DataFrame, np.ndarray]):
    x, y = german
    first = run_benchmark(GERMAN, x, y, seed=3, gbm_trials=1)
    second = run_benchmark(GERMAN, x, y, seed=3, gbm_trials=1)
    assert first == second
    assert first.test["logistic_scorecard"]["auc"] > 0.6
    assert first.test["lightgbm"]["auc"] > 0.6


def test_benchmark_refuses_unencoded_gaps():
    x = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0]})
    with pytest.raises(ValueError, match="NaN"):
        run_benchmark("tiny", x, np.array([0, 1, 0, 1]))


def test_markdown_names_every_dataset(credit_scoring_result: RealDataResult):
    german_like = dataclasses.replace(credit_scoring_result, dataset=GERMAN)
    text = to_markdown([german_like, credit_scoring_result])
    assert GERMAN in text and CREDIT_SCORING in text
    assert text.count("| lightgbm_calibrated |") == 2
    assert "0.28" in text  # the default rate column
