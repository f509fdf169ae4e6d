"""Serving follows MLflow's aliases, on the real Kafka, Redis and a throwaway MLflow registry.

Two versions of the tiny model are registered the way training registers them (the bundle logged
as the run's `bundle` artifacts, the version tagged with its bundle); the second one's bands are
stricter, so the two disagree on some applications. The scoring service runs in this process with
an empty bundle root (every bundle is downloaded from the registry), the champion deciding and
the challenger in shadow; then `champion` moves while calls keep coming, announced by a
`ModelRegistryChanged`, with the registry's poll an hour away.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from prometheus_client import REGISTRY

from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.members import DEV_TENANT
from services.common.model_registry import (
    BUNDLE_TAG,
    CHALLENGER,
    CHAMPION,
    REGISTERED_MODEL,
    ModelLocator,
)
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged, RegistryAction
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.settings import InfraSettings
from services.common.topics import TopicSpec, ensure_topics
from services.common.vocabulary import PRODUCTS
from services.scoring.__main__ import serve
from services.scoring.settings import ScoringSettings
from services.scoring.shadow import shadow_decision_id
from tests.integration.feast_projects import feast_project
from tests.integration.kafka_helpers import read_topic

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tests.conftest import TinyModel

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Registered:
    client: MlflowClient
    champion: tuple[str, str]  # (model version, bundle version)
    challenger: tuple[str, str]


@pytest.fixture(scope="module")
def registry(
    tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
    """A throwaway MLflow store (MLFLOW_TRACKING_URI while the module runs) holding two
    versions of the tiny model: the champion and a stricter challenger."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder}/mlflow.db"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment(
            "scoring-registry-test", artifact_location=(folder / "artifacts").as_uri()
        )
        client.create_registered_model(REGISTERED_MODEL)
        source = tiny_model.bundle.resolve()
        registered = []
        for role, strictness in (("a", 1.0), ("b", 0.5)):
            bundle = folder / "trained" / f"{source.name}-{role}"
            shutil.copytree(source, bundle)
            manifest = json.loads((bundle / "manifest.json").read_text())
            manifest["version"] = bundle.name
            manifest["bands"]["approve_below_pd"] *= strictness
            (bundle / "manifest.json").write_text(json.dumps(manifest))
            run = client.create_run(experiment).info.run_id
            client.log_artifacts(run, str(bundle), "bundle")
            client.set_terminated(run)
            version = client.create_model_version(
                REGISTERED_MODEL, f"runs:/{run}/bundle", run_id=run, tags={BUNDLE_TAG: bundle.name}
            ).version
            registered.append((str(version), bundle.name))
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, registered[0][0])
        client.set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, registered[1][0])
        yield Registered(client, registered[0], registered[1])
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture(scope="module")
def in_tiny_project(tiny_model: TinyModel) -> Iterator[None]:
    with feast_project("bundle_test"):  # where tiny_model loaded its world
        yield


def applications(tiny_model: TinyModel, prefix: str, n: int) -> list[LoanApplicationSubmitted]:
    rows = tiny_model.world.applications.head(n)
    return [
        LoanApplicationSubmitted(
            application_id=f"{prefix}-{a.application_id}",
            tenant_id=DEV_TENANT,
            member_id=str(a.member_id),
            sacco_id=str(a.sacco_id),
            product=PRODUCTS.value(str(a.product)),  # type: ignore[arg-type]
            amount_kes=float(a.amount_kes),
            term_months=int(a.term_months),
        )
        for a in rows.itertuples()
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(condition: object, within: float = 30.0) -> None:
    """Await `condition()` (a coroutine function returning bool) until true or time is up."""
    async with asyncio.timeout(within):
        while not await condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def decisions(records: list) -> list[CreditDecision]:  # type: ignore[type-arg]
    return [decode(r.value, CreditDecision).payload for r in records]


async def test_scoring_follows_the_champion_and_shadows_the_challenger(
    infra: InfraSettings,
    tiny_model: TinyModel,
    registry: Registered,
    in_tiny_project: None,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {
        name: TopicSpec(f"test.{name}.{run}", partitions=3, retention_days=1)
        for name in ("applications", "decisions", "shadow", "registry")
    }
    await ensure_topics(infra.kafka_bootstrap, list(topics.values()))
    settings = ScoringSettings(
        infra=infra,
        model_source="registry",
        bundle_root=str(tmp_path / "served"),  # empty: every bundle comes from MLflow
        grpc_port=free_port(),
        metrics_port=0,
        model_threads=1,
        applications_topic=topics["applications"].name,
        decisions_topic=topics["decisions"].name,
        shadow_topic=topics["shadow"].name,
        registry_topic=topics["registry"].name,
        consumer_group=f"scoring-registry-{run}",
        ledger_namespace=f"scoring-registry-{run}",
        bundle_check_seconds=3600,  # only the event can make it follow within the test
    )
    (_, old), (new_number, new) = registry.champion, registry.challenger
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)

    async def serving_version() -> str:
        reply = await stub.DescribeModel(scoring_pb2.DescribeModelRequest(), timeout=5)
        return reply.model_version

    async def answers() -> bool:
        if serving.done():
            serving.result()  # start-up failed: say why
        try:
            return bool(await serving_version())
        except grpc.aio.AioRpcError:
            return False

    async def listening() -> bool:
        return REGISTRY.get_sample_value("alama_scoring_registry_listening") == 1

    try:
        await until(answers, within=60)
        await until(listening)
        assert await serving_version() == old
        assert (tmp_path / "served" / old / "manifest.json").exists()  # downloaded from MLflow

        # the champion decides over gRPC and Kafka, the challenger shadows both
        sync_apps = applications(tiny_model, f"reg-sync-{run}", 12)
        kafka_apps = applications(tiny_model, f"reg-kafka-{run}", 12)
        reply = await stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(applications=sync_apps))
        assert all(r.decision.model_version == old for r in reply.results)
        producer = create_producer(infra, client_id=f"registry-test-{run}")
        await producer.start()
        try:
            for app in kafka_apps:
                envelope = wrap(app, producer="core-banking", subject=app.member_id)
                await (await publish(producer, settings.applications_topic, envelope))
        finally:
            await producer.stop()
        n = len(sync_apps) + len(kafka_apps)
        champion = {
            d.application_id: d
            for d in decisions(await read_topic(infra, settings.decisions_topic, n, within=60))
        }
        shadowed = {
            d.application_id: d
            for d in decisions(await read_topic(infra, settings.shadow_topic, n, within=60))
        }
        assert set(champion) == set(shadowed) == {a.application_id for a in sync_apps + kafka_apps}
        assert {d.model_version for d in champion.values()} == {old}
        for app_id, mirror in shadowed.items():
            original = champion[app_id]
            assert mirror.model_version == new
            assert mirror.decision_id == shadow_decision_id(original.decision_id, new)
            assert (mirror.member_id, mirror.tenant_id) == (original.member_id, original.tenant_id)
            assert dict(mirror.features) == dict(original.features)  # the same feature rows
            assert mirror.probability_of_default == pytest.approx(
                original.probability_of_default, abs=1e-12
            )
        # the stricter challenger approves fewer: the band comparison has something to show
        assert sum(m.band != champion[a].band for a, m in shadowed.items()) > 0
        assert REGISTRY.get_sample_value(
            "alama_scoring_served_bundle", {"role": CHALLENGER, "version": new}
        )

        # promotion while calls keep coming: none fails, and the answers switch
        failures: list[str] = []
        seen: dict[int, list[str]] = {0: [], 1: []}
        calling = asyncio.Event()
        members = applications(tiny_model, "unused", 12)

        async def keep_calling(worker: int) -> None:
            for i in range(10_000):
                if calling.is_set():
                    return
                app = LoanApplicationSubmitted()
                app.CopyFrom(members[i % len(members)])
                app.application_id = f"reg-load-{run}-{worker}-{i}"
                try:
                    answer = await stub.Score(scoring_pb2.ScoreRequest(application=app), timeout=5)
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")
                else:
                    seen[worker].append(answer.decision.model_version)

        load = [asyncio.create_task(keep_calling(w)) for w in seen]
        await until(lambda: _true(all(len(v) >= 5 for v in seen.values())))
        registry.client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, new_number)
        assert await serving_version() == old  # the poll is an hour away
        moved_at = time.monotonic()
        change = ModelRegistryChanged(
            change_id=str(uuid.uuid4()),
            action=RegistryAction.REGISTRY_ACTION_PROMOTED,
            requested_by="tests",
            model_name=REGISTERED_MODEL,
            model_version=new_number,
            bundle_version=new,
        )
        producer = create_producer(infra, client_id=f"registry-test-{run}-change")
        await producer.start()
        try:
            envelope = wrap(change, producer="training", subject=REGISTERED_MODEL)
            await (await publish(producer, settings.registry_topic, envelope))
        finally:
            await producer.stop()

        async def switched() -> bool:
            return await serving_version() == new

        await until(switched, within=20)
        reload_seconds = time.monotonic() - moved_at
        await until(lambda: _true(all(v.count(new) >= 5 for v in seen.values())))
        calling.set()
        await asyncio.gather(*load)
    finally:
        stop.set()
        await channel.close()
        await asyncio.wait_for(serving, timeout=30)

    assert failures == []
    assert reload_seconds < 20  # far under the hour's poll
    for versions in seen.values():
        assert versions[0] == old and versions[-1] == new
        first_new = versions.index(new)
        assert set(versions[first_new:]) == {new}, "one caller's answers never go back"
    # the challenger is the champion now: nothing left to shadow
    assert (
        REGISTRY.get_sample_value(
            "alama_scoring_served_bundle", {"role": CHALLENGER, "version": new}
        )
        is None
    )


async def _true(value: bool) -> bool:
    return value


async def test_explanation_explains_registered_versions_it_never_had(
    infra: InfraSettings,
    tiny_model: TinyModel,
    registry: Registered,
    in_tiny_project: None,
    tmp_path: Path,
) -> None:
    """The challenger's decisions (made in shadow) are explained on a machine whose bundle
    root is empty; a version registered nowhere is unknown, saying so."""
    from services.common.bundle import load_served_bundle
    from services.common.feast_config import open_feature_store
    from services.explanation.__main__ import build_explainer
    from services.explanation.settings import ExplanationSettings
    from services.scoring.ledger import MemoryLedger
    from services.scoring.online_features import RedisOnlineFeatures
    from services.scoring.scorer import Scorer

    _number, version = registry.challenger
    made = ModelLocator(bundle_root=tmp_path / "scoring").folder(version)
    scorer = Scorer(
        RedisOnlineFeatures(open_feature_store(infra)),
        load_served_bundle(made, threads=1),
        bundle_dir=made,
        ledger=MemoryLedger(),
        threads=1,
    )
    try:
        outcomes = await scorer.score(applications(tiny_model, "explain-reg", 6), path="grpc")
    finally:
        scorer.close()
    decided = [o.decision for o in outcomes if o.decision is not None]
    assert len(decided) == 6 and {d.model_version for d in decided} == {version}
    nowhere = CreditDecision()
    nowhere.CopyFrom(decided[0])
    nowhere.model_version = "tiny-19700101000000-nowhere"

    root = tmp_path / "explanation"
    explainer = build_explainer(ExplanationSettings(infra=infra, bundle_root=str(root)))
    try:
        explained = await explainer.explain(
            [*decided, nowhere], explained_at=decided[0].decided_at.ToDatetime(), path="test"
        )
    finally:
        explainer.close()
    assert all(o.explanation is not None for o in explained[:-1])
    assert all(o.explanation.model_version == version for o in explained[:-1])  # type: ignore[union-attr]
    assert (root / version / "manifest.json").exists()  # fetched once, kept for next time
    error = explained[-1].error
    assert error is not None and error.reason == "unknown_model_version"
    assert "exists nowhere" in error.detail
