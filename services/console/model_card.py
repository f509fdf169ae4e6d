"""The model now deciding, as the people who oversee it read it: its version, how it did when it
was trained (test and out-of-time metrics beside the plain baseline, fairness by group, the band
cut-offs) and its model card, asked of scoring's contract (`DescribeModel`), never read from its
files, so the page shows what is actually serving."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from markdown_it import MarkdownIt
from markupsafe import Markup

from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.telemetry import inject_grpc_metadata

log = logging.getLogger(__name__)
#: the metrics a credit committee reads first, in this order
METRIC_NAMES = (("auc", "AUC"), ("ks", "KS"), ("brier", "Brier"), ("ece", "ECE"))
#: the models compared in metrics.json, shipped first, the ceiling last
MODEL_ORDER = ("shipped", "lightgbm", "logistic_regression", "logistic_scorecard", "oracle")
#: CommonMark with raw HTML off: a model card is text, never markup that runs in the console
_markdown = MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True)
class ServingModel:
    version: str
    inputs: str
    metrics: dict[str, Any]
    card_html: Markup | None


@dataclass(frozen=True)
class Described:
    model: ServingModel | None
    missing: str | None = None  # why there is none, for the page


class ModelReader:
    def __init__(self, target: str, timeout_s: float) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = scoring_pb2_grpc.ScoringServiceStub(self.channel)
        self.timeout_s = timeout_s

    async def describe(self) -> Described:
        try:
            response = await self.stub.DescribeModel(
                scoring_pb2.DescribeModelRequest(with_documents=True),
                timeout=self.timeout_s,
                metadata=inject_grpc_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("scoring unavailable", extra={"code": exc.code().name})
            return Described(None, "The scoring service is unavailable; try again shortly.")
        return Described(serving_model(response))

    async def close(self) -> None:
        await self.channel.close()


def serving_model(description: scoring_pb2.ModelDescription) -> ServingModel:
    card = description.model_card_markdown
    return ServingModel(
        version=description.model_version,
        inputs=scoring_pb2.ModelInputs.Name(description.inputs)
        .removeprefix("MODEL_INPUTS_")
        .replace("_", " ")
        .lower(),
        metrics=MessageToDict(description.metrics),
        card_html=Markup(_markdown.render(card)) if card.strip() else None,  # raw HTML off
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def metric_rows(metrics: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """One row per model evaluated on `split` ("test", "out_of_time"), shipped model first."""
    models = metrics.get(split)
    if not isinstance(models, dict):
        return []
    names = [m for m in MODEL_ORDER if m in models] + sorted(set(models) - set(MODEL_ORDER))
    rows = []
    for name in names:
        values = models[name]
        if isinstance(values, dict):
            rows.append(
                {"model": name.replace("_", " ")}
                | {key: _number(values.get(key)) for key, _ in METRIC_NAMES}
            )
    return rows


def fairness_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per protected attribute: disparate impact, equal-opportunity difference, within targets."""
    fairness = metrics.get("fairness")
    if not isinstance(fairness, dict):
        return []
    return [
        {
            "attribute": attribute.replace("_", " "),
            "disparate_impact": _number(values.get("disparate_impact_ratio")),
            "equal_opportunity": _number(values.get("equal_opportunity_difference")),
            "within_targets": values.get("within_targets"),
        }
        for attribute, values in fairness.items()
        if isinstance(values, dict)
    ]


def band_cutoffs(metrics: dict[str, Any]) -> dict[str, float | None]:
    bands = metrics.get("bands")
    if not isinstance(bands, dict):
        return {}
    validation = bands.get("validation")
    if not isinstance(validation, dict):
        validation = {}
    return {
        "approve_below_pd": _number(bands.get("approve_below_pd")),
        "decline_at_or_above_pd": _number(bands.get("decline_at_or_above_pd")),
        "approve_rate": _number(validation.get("approve_rate")),
        "review_rate": _number(validation.get("review_rate")),
        "decline_rate": _number(validation.get("decline_rate")),
    }
