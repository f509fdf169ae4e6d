"""A lender's own data served with no code change: Home Credit files (the Kaggle format, written
by the fixture generator with the real column names and quirks) imported with the CLI, trained,
exported and promoted, then the running scoring and gateway services (separate processes, real
Kafka, Redis and PostgreSQL) score a Home-Credit-sourced member over REST and over Kafka.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra import supervisor
from services.common import features as F
from services.common.bundle import load_bundle
from services.common.envelope import decode
from services.common.kafka import create_producer, publish
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.settings import InfraSettings, service_port
from services.common.topics import CREDIT_DECISIONS, LOAN_APPLICATIONS, all_topics, ensure_topics
from services.explanation.explainer import load_explained_model
from simulator.events import application_envelope, book_namespace
from simulator.payloads import application_body
from simulator.scenario import ApplicationRequest, choose_applications
from tests.integration.feast_projects import feast_env, feast_project
from training import pipeline
from training.contract import LoanBook
from training.export import write_bundle
from training.profiles import get_profile
from training.report import write_report
from training.sources.home_credit_fixture import write_fixture

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
GATEWAY = f"http://127.0.0.1:{service_port(8080)}"
API_KEY = {"X-API-Key": "dev-partner-key"}
PROJECT = "home_credit_e2e"


@dataclass
class HomeCreditSystem:
    book: LoanBook
    version: str
    bundle: Path
    manifest: dict[str, Any]
    infra: InfraSettings
    run: str


def _partitions(topic: str) -> list[TopicPartition]:
    spec = next(t for t in all_topics() if t.name == topic)
    return [TopicPartition(topic, p) for p in range(spec.partitions)]


async def _commit_at_end(infra: InfraSettings, group: str, topic: str) -> None:
    """The fresh scoring group starts at the topic's end: it sees only this module's events."""
    await ensure_topics(infra.kafka_bootstrap, all_topics())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(_partitions(topic))
        consumer.assign(list(ends))
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def home_credit(
    infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HomeCreditSystem]:
    folder = tmp_path_factory.mktemp("home_credit")
    write_fixture(folder / "kaggle", n_applicants=1500, seed=11)
    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "import",
            "--source",
            "home-credit",
            str(folder / "kaggle"),
            "--destination",
            str(folder / "book"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    book = LoanBook.load(folder / "book")
    with feast_project(PROJECT):
        pipeline.load_into_feast(infra, book, echo=lambda _line: None)
        trained = pipeline.train(infra, get_profile("tiny"), book, echo=lambda _line: None)
        bundle = write_bundle(trained, pipeline.evaluate(trained), root=folder / "bundles")
        write_report(trained, bundle, real_data=False)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (folder / "bundles" / "current").resolve() == bundle
    assert f"**{manifest['shipped_model']}**" in (bundle / "report.md").read_text()
    run = uuid.uuid4().hex[:8]
    env = {
        **feast_env(PROJECT),
        "ALAMA_SCORING_MODEL_SOURCE": "link",  # this test's own bundle, not the registry's
        "ALAMA_SCORING_BUNDLE_DIR": str(folder / "bundles" / "current"),
        "ALAMA_SCORING_CONSUMER_GROUP": f"scoring-home-credit-{run}",
        "ALAMA_TRACE_FILE": str(folder / "spans.jsonl"),
    }
    supervisor.down(echo=lambda _line: None)
    asyncio.run(_commit_at_end(infra, env["ALAMA_SCORING_CONSUMER_GROUP"], LOAN_APPLICATIONS))
    supervisor.up(["scoring", "gateway"], env=env, echo=lambda _line: None)
    try:
        yield HomeCreditSystem(book, bundle.name, bundle, manifest, infra, run)
    finally:
        supervisor.down(echo=lambda _line: None)


def test_the_bundle_follows_the_source(home_credit: HomeCreditSystem) -> None:
    manifest: dict[str, Any] = home_credit.manifest
    used = set(manifest["tabular_features"])
    assert "bureau_negative_listings" in used or "bureau_max_days_past_due" in used
    assert not any(name.startswith("mm_") for name in used)  # no mobile money in Home Credit
    assert "mobile_money" not in manifest["sequences"]
    assert manifest["training_data"]["source"].startswith("home-credit")
    # what ships is what the model choice allows: never a model the plain one beats
    if manifest["ensemble_refused"]:
        assert manifest["shipped_model"] == "logistic_regression"
        assert manifest["models"]["tabular"]["kind"] == "logistic_regression"
    else:
        assert manifest["shipped_model"] == "ensemble"
        assert "repayments" in manifest["sequences"]


def test_reasons_are_exact_contributions_of_the_model_that_ships(
    home_credit: HomeCreditSystem,
) -> None:
    """Scoring's reasons and explanation's both read the bundle's contributions: with the
    uncalibrated model's bias they add up to its log-odds, whichever model ships."""
    bundle = load_bundle(home_credit.bundle)
    explained = load_explained_model(home_credit.bundle)
    rng = np.random.default_rng(5)
    tabular = rng.normal(size=(64, len(F.TABULAR_FEATURES)))
    values, expected = explained.contributions(tabular)
    np.testing.assert_allclose(values, bundle.contributions(tabular), atol=1e-9)
    unused = np.setdiff1d(np.arange(len(F.TABULAR_FEATURES)), bundle.columns)
    assert np.all(values[:, unused] == 0)
    x = tabular[:, bundle.columns]
    if bundle.kind == "logistic_regression":
        p = bundle.tabular_model.run(None, {"tabular": x})[1][:, 1]
    else:
        assert bundle.booster is not None
        p = bundle.booster.predict(x)
        expected = float(bundle.booster.predict(x, pred_contrib=True)[0, -1])
    np.testing.assert_allclose(values.sum(axis=1) + expected, np.log(p / (1 - p)), atol=1e-6)


async def test_a_home_credit_member_is_scored_over_rest_and_kafka(
    home_credit: HomeCreditSystem,
) -> None:
    first, second = choose_applications(home_credit.book, 2, f"hc{home_credit.run}")
    assert first.member_id.startswith("HC")

    async with httpx.AsyncClient(base_url=GATEWAY, headers=API_KEY, timeout=30) as client:
        response = await client.post("/v1/scores", json=application_body(first))
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["model_version"] == home_credit.version
    assert 300 <= decision["score"] <= 900
    assert decision["band"] in {"approve", "review", "decline"}
    assert 0.0 < decision["probability_of_default"] < 1.0

    event = await _decision_over_kafka(home_credit, second)
    assert event.model_version == home_credit.version
    assert event.member_id == second.member_id
    assert 300 <= event.score <= 900


async def _decision_over_kafka(
    system: HomeCreditSystem, application: ApplicationRequest
) -> CreditDecision:
    consumer = AIOKafkaConsumer(bootstrap_servers=system.infra.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = _partitions(CREDIT_DECISIONS)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, ends[tp])
        producer = create_producer(system.infra, client_id="e2e-home-credit-core-banking")
        await producer.start()
        try:
            envelope = application_envelope(application, book_namespace(system.book))
            await (await publish(producer, LOAN_APPLICATIONS, envelope))
        finally:
            await producer.stop()
        async with asyncio.timeout(90):
            while True:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    for record in batch:
                        decision = decode(record.value, CreditDecision).payload
                        if decision.application_id == application.application_id:
                            return decision
    finally:
        await consumer.stop()
