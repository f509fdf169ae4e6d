"""What the serving model reads from an application, asked of scoring and checked here.

A bundle trained on a lender's own table (`python -m training tabular`) needs that table's
columns in each application's `attributes`; a bundle on Alama's features needs only the member.
Scoring answers `DescribeModel` for whatever bundle it serves now, so the gateway's request
schema follows the promoted bundle with no code change. Synchronous scoring is checked by scoring
itself; the asynchronous path is checked here, before the 202, so a caller hears about a missing
column now rather than finding a dead letter later.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.common.protos.alama.scoring.v1 import scoring_pb2
from services.common.tabular_bundle import MISSING_TOKENS, ColumnEncoding, TabularEncoding
from services.gateway.clients import Scoring
from services.gateway.errors import InvalidRequest, UpstreamFailed, UpstreamUnavailable
from services.gateway.schemas import Application, ModelAttribute, ModelInputs

KINDS = {
    scoring_pb2.ATTRIBUTE_KIND_NUMERIC: "numeric",
    scoring_pb2.ATTRIBUTE_KIND_CATEGORICAL: "categorical",
}
INPUTS = {
    scoring_pb2.MODEL_INPUTS_FEATURE_STORE: "feature_store",
    scoring_pb2.MODEL_INPUTS_ATTRIBUTES: "attributes",
}


def encoding_of(description: scoring_pb2.ModelDescription) -> TabularEncoding:
    """The columns as the shared encoding knows them, for its own value checks."""
    return TabularEncoding(
        tuple(
            ColumnEncoding(
                column=a.name,
                kind="numeric" if a.kind == scoring_pb2.ATTRIBUTE_KIND_NUMERIC else "categorical",
                features=(),
                levels=tuple(a.levels),
            )
            for a in description.attributes
        )
    )


def attributes_schema(description: scoring_pb2.ModelDescription) -> dict[str, Any]:
    """JSON Schema of `attributes` for this model: every column required, null for unknown."""
    unknown = sorted(t for t in MISSING_TOKENS if t)
    properties: dict[str, Any] = {}
    for a in description.attributes:
        if a.kind == scoring_pb2.ATTRIBUTE_KIND_NUMERIC:
            properties[a.name] = {"type": ["number", "string", "null"], "format": "number"}
        else:
            properties[a.name] = {"type": ["string", "null"], "enum": [*a.levels, "", None]}
    return {
        "type": "object",
        "required": [a.name for a in description.attributes],
        "properties": properties,
        "description": f"empty, null or any of {unknown} (any case) means unknown",
    }


def model_inputs(description: scoring_pb2.ModelDescription) -> ModelInputs:
    return ModelInputs(
        model_version=description.model_version,
        inputs=INPUTS.get(description.inputs, "unspecified"),
        attributes=[
            ModelAttribute(name=a.name, kind=KINDS.get(a.kind, "unspecified"), levels=a.levels)
            for a in description.attributes
        ],
        attributes_schema=attributes_schema(description),
    )


class ServingModel:
    """The last description scoring gave, kept `ttl` seconds; a stale one beats none."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._description: scoring_pb2.ModelDescription | None = None
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def describe(
        self, scoring: Scoring, *, fresh: bool = False
    ) -> scoring_pb2.ModelDescription:
        async with self._lock:
            if fresh or self._description is None or time.monotonic() - self._fetched > self.ttl:
                self._description = await scoring.describe_model()
                self._fetched = time.monotonic()
            return self._description

    async def check(self, scoring: Scoring, application: Application) -> None:
        """Raise InvalidRequest naming the columns a tabular model cannot score. When scoring
        cannot say what it serves, the application goes ahead: scoring checks it again."""
        try:
            description = await self.describe(scoring)
        except (UpstreamUnavailable, UpstreamFailed):
            if self._description is None:
                return
            description = self._description
        if description.inputs != scoring_pb2.MODEL_INPUTS_ATTRIBUTES:
            return
        problems = encoding_of(description).column_problems(application.attribute_texts())
        if problems:
            raise InvalidRequest(
                f"model {description.model_version} cannot score this application: "
                + "; ".join(f"attributes.{column} {why}" for column, why in problems),
                loc=("body", "attributes", problems[0][0]),
            )
