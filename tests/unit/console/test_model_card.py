"""The model page's reading of a bundle's metrics: the shipped model first, numbers that are not
finite shown as missing, sections a bundle lacks left out, and a model card rendered as text."""

from __future__ import annotations

import math

from google.protobuf.struct_pb2 import Struct

from services.common.protos.alama.scoring.v1 import scoring_pb2
from services.console.model_card import band_cutoffs, fairness_rows, metric_rows, serving_model

METRICS = {
    "test": {
        "oracle": {"auc": 0.81, "ks": 0.47, "brier": 0.083, "ece": 0.0098},
        "logistic_regression": {"auc": 0.79, "ks": 0.45, "brier": 0.084, "ece": math.nan},
        "shipped": {"auc": 0.80, "ks": 0.46, "brier": 0.084, "ece": 0.012},
    },
    "fairness": {
        "gender": {
            "disparate_impact_ratio": 0.97,
            "equal_opportunity_difference": 0.021,
            "within_targets": True,
        },
        "age_band": {"disparate_impact_ratio": 0.86, "within_targets": False},
    },
    "bands": {
        "approve_below_pd": 0.12,
        "decline_at_or_above_pd": 0.29,
        "validation": {"approve_rate": 0.71, "review_rate": 0.2, "decline_rate": 0.09},
    },
}


def test_the_shipped_model_comes_first_and_the_ceiling_last() -> None:
    rows = metric_rows(METRICS, "test")
    assert [r["model"] for r in rows] == ["shipped", "logistic regression", "oracle"]
    assert rows[0]["auc"] == 0.80
    assert rows[1]["ece"] is None  # NaN is shown as missing, never as a number


def test_fairness_and_bands_read_what_the_bundle_recorded() -> None:
    gender, age = fairness_rows(METRICS)
    assert (gender["attribute"], gender["disparate_impact"], gender["within_targets"]) == (
        "gender",
        0.97,
        True,
    )
    assert age["equal_opportunity"] is None and age["within_targets"] is False
    assert band_cutoffs(METRICS)["review_rate"] == 0.2


def test_a_bundle_without_metrics_shows_no_tables() -> None:
    assert metric_rows({}, "test") == [] and metric_rows({"test": []}, "test") == []
    assert fairness_rows({}) == [] and band_cutoffs({"bands": 3}) == {}


def test_the_model_card_is_rendered_as_text_with_its_links_made_safe() -> None:
    metrics = Struct()
    metrics.update({"profile": "tiny"})
    card = "# Card\n\n<img src=x onerror=alert(1)> [run](javascript:alert(1))\n"
    model = serving_model(
        scoring_pb2.ModelDescription(model_version="v1", metrics=metrics, model_card_markdown=card)
    )
    assert model.version == "v1" and model.metrics == {"profile": "tiny"}
    assert model.card_html is not None
    assert "<h1>Card</h1>" in model.card_html
    assert "<img" not in model.card_html and 'href="javascript' not in model.card_html
    assert serving_model(scoring_pb2.ModelDescription(model_version="v1")).card_html is None
