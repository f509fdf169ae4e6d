"""The scoring service on the real Kafka, Redis and PostgreSQL: gRPC and Kafka give one decision.

The session's tiny model (its world in its own Feast project and offline schema, never the demo's)
is copied into a bundle folder of this module's, and the same applications are scored through a
real grpc.aio channel and through the Kafka consumer; both must agree exactly.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from prometheus_client import REGISTRY

from services.common.applications import application_event_id
from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish
from services.common.members import DEV_TENANT, member_key, split_member_key
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.settings import InfraSettings
from services.common.telemetry import extract_kafka_context, inject_grpc_metadata
from services.common.topics import TopicSpec, dead_letter_topic, ensure_topics
from services.common.vocabulary import PRODUCTS as PRODUCT_VOCABULARY
from services.scoring.__main__ import build_scorer
from services.scoring.consumer import build_consumer
from services.scoring.ledger import ledger_key
from services.scoring.publisher import DecisionPublisher
from services.scoring.scorer import Scorer
from services.scoring.server import start_server
from services.scoring.settings import ScoringSettings
from tests.conftest import TinyModel
from tests.integration.feast_projects import feast_environment
from tests.integration.kafka_helpers import read_topic
from training.bundles import promote_bundle
from training.world import World

if TYPE_CHECKING:
    from feast import FeatureStore
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.integration
PRODUCTS = {name: PRODUCT_VOCABULARY.value(name) for name in PRODUCT_VOCABULARY}
N_APPLICATIONS = 40
UNKNOWN_MEMBER = "M-nobody-knows"


@pytest.fixture(scope="module")
def feast_env(tiny_model: TinyModel) -> Iterator[None]:
    """The session's tiny model's Feast project, its world loaded there (each test here writes
    only members of its own run, and reads the rest)."""
    with feast_environment(tiny_model.feast_env):
        yield


@pytest.fixture(scope="module")
def world(tiny_model: TinyModel, feast_env: None) -> World:
    return tiny_model.world


@pytest.fixture(scope="module")
def bundle_root(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny model promoted in a bundle folder of this module's own, since one
    test here promotes another bundle in it."""
    source = tiny_model.bundle.resolve()
    root = tmp_path_factory.mktemp("bundles")
    shutil.copytree(source, root / source.name)
    promote_bundle(source.name, root=root)
    return root


@pytest.fixture(scope="module")
def settings(infra: InfraSettings, bundle_root: Path, feast_env: None) -> ScoringSettings:
    return ScoringSettings(
        infra=infra,
        model_source="link",  # this module promotes by the link; the registry's own tests follow
        bundle_dir=str(bundle_root / "current"),
        metrics_port=0,
        model_threads=1,
        consumer_group=f"scoring-test-{uuid.uuid4().hex[:8]}",
        ledger_namespace=f"scoring-test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture(scope="module")
def scorer(settings: ScoringSettings) -> Iterator[Scorer]:
    scorer = build_scorer(settings)
    yield scorer
    scorer.close()


@dataclass
class Grpc:
    channel: grpc.aio.Channel
    scoring: scoring_pb2_grpc.ScoringServiceStub


@pytest.fixture
async def client(scorer: Scorer, settings: ScoringSettings) -> AsyncIterator[Grpc]:
    server = await start_server(scorer, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Grpc(channel, scoring_pb2_grpc.ScoringServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(None)


def applications(world: World) -> list[LoanApplicationSubmitted]:
    rows = world.applications.head(N_APPLICATIONS)
    return [
        LoanApplicationSubmitted(
            application_id=f"scoring-test-{a.application_id}",
            tenant_id=DEV_TENANT,  # the world's book is the development tenant's
            member_id=str(a.member_id),
            sacco_id=str(a.sacco_id),
            product=PRODUCTS[str(a.product)],
            amount_kes=float(a.amount_kes),
            term_months=int(a.term_months),
        )
        for a in rows.itertuples()
    ]


def unknown_member() -> LoanApplicationSubmitted:
    return LoanApplicationSubmitted(
        application_id="scoring-test-unknown",
        tenant_id=DEV_TENANT,
        member_id=UNKNOWN_MEMBER,
        product=PRODUCTS["emergency"],
        amount_kes=10_000.0,
        term_months=6,
    )


def assert_same(sync: CreditDecision, asynchronous: CreditDecision) -> None:
    assert sync.decision_id == asynchronous.decision_id
    assert sync.model_version == asynchronous.model_version
    assert abs(sync.probability_of_default - asynchronous.probability_of_default) < 1e-9
    assert sync.score == asynchronous.score
    assert sync.band == asynchronous.band
    assert [r.code for r in sync.reasons] == [r.code for r in asynchronous.reasons]


async def test_grpc_scores_batches_and_single_applications(
    client: Grpc, world: World, scorer: Scorer, spans: InMemorySpanExporter
) -> None:
    apps = applications(world)
    request = scoring_pb2.ScoreBatchRequest(applications=[*apps, unknown_member()])
    response = await client.scoring.ScoreBatch(request)
    assert len(response.results) == len(apps) + 1
    decisions = [r.decision for r in response.results[:-1]]
    assert all(r.WhichOneof("outcome") == "decision" for r in response.results[:-1])
    for app, decision in zip(apps, decisions, strict=True):
        assert decision.application_id == app.application_id
        assert decision.model_version == scorer.model_version
        assert 0 < decision.probability_of_default < 1 and 300 <= decision.score <= 900
        assert decision.band != 0 and len(decision.reasons) <= 4
        assert decision.features["amount_kes"] == pytest.approx(app.amount_kes)
    assert any(d.reasons for d in decisions)
    error = response.results[-1].error
    assert error.code == scoring_pb2.SCORE_ERROR_CODE_UNKNOWN_MEMBER
    assert error.application_id == "scoring-test-unknown"

    # a single Score continues the caller's trace and equals the batch answer
    with trace.get_tracer("test").start_as_current_span("gateway call") as parent:
        single = await client.scoring.Score(
            scoring_pb2.ScoreRequest(application=apps[0]), metadata=inject_grpc_metadata()
        )
    assert_same(single.decision, decisions[0])
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    server_spans = [s for s in spans.get_finished_spans() if s.name.endswith("/Score")]
    assert any(s.context.trace_id == parent.get_span_context().trace_id for s in server_spans), (
        "the server span must continue the caller's trace"
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.scoring.Score(scoring_pb2.ScoreRequest(application=unknown_member()))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "UNKNOWN_MEMBER" in (raised.value.details() or "")


async def test_a_basic_view_answers_the_same_decision_without_its_inputs(
    client: Grpc, world: World
) -> None:
    """The gateway asks for BASIC: the same decision as the full one (and as credit.decisions
    carries), without the features, sequences, attention and contributions."""
    apps = applications(world)[:5]
    full = await client.scoring.ScoreBatch(scoring_pb2.ScoreBatchRequest(applications=apps))
    basic = await client.scoring.ScoreBatch(
        scoring_pb2.ScoreBatchRequest(applications=apps, view=scoring_pb2.DECISION_VIEW_BASIC)
    )
    single = await client.scoring.Score(
        scoring_pb2.ScoreRequest(application=apps[0], view=scoring_pb2.DECISION_VIEW_BASIC)
    )
    heavy = ("features", "sequences", "repayment_attention", "mobile_money_attention")
    for whole, slim in zip(
        [r.decision for r in full.results],
        [single.decision, *(r.decision for r in basic.results[1:])],
        strict=True,
    ):
        assert whole.features and whole.sequences and whole.repayment_attention
        assert whole.contributions
        assert not any(getattr(slim, name) for name in (*heavy, "contributions"))
        expected = CreditDecision()
        expected.CopyFrom(whole)
        for name in (*heavy, "contributions"):
            expected.ClearField(name)
        assert slim == expected  # everything else as it is: ids, PD, score, band, reasons, times
        assert slim.ByteSize() < whole.ByteSize() / 5


async def test_grpc_rejects_oversized_batches_and_reports_health(
    client: Grpc, world: World
) -> None:
    app = applications(world)[0]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.scoring.ScoreBatch(scoring_pb2.ScoreBatchRequest(applications=[app] * 1001))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1,000" in (raised.value.details() or "")
    health = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "alama.scoring.v1.ScoringService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_kafka_decisions_equal_grpc_decisions(
    client: Grpc,
    world: World,
    scorer: Scorer,
    settings: ScoringSettings,
    infra: InfraSettings,
    scratch_topic: TopicSpec,
    spans: InMemorySpanExporter,
) -> None:
    apps = applications(world)
    invalid = LoanApplicationSubmitted(
        application_id="scoring-test-invalid", member_id=apps[0].member_id, amount_kes=-1.0
    )
    producer = create_producer(infra, client_id="scoring-test")
    await producer.start()
    trace_ids: dict[str, int] = {}
    tracer = trace.get_tracer("test")
    try:
        for app in [*apps, unknown_member(), invalid]:
            with tracer.start_as_current_span("core banking submit") as span:
                trace_ids[app.application_id] = span.get_span_context().trace_id
                envelope = wrap(app, producer="core-banking", subject=app.member_id)
                await (await publish(producer, scratch_topic.name, envelope))
    finally:
        await producer.stop()

    kafka_settings = await scratch_settings(settings, infra, scratch_topic)
    publisher = DecisionPublisher(kafka_settings)
    await publisher.start()
    consumer = build_consumer(kafka_settings, scorer, publisher)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        records = await read_topic(infra, kafka_settings.decisions_topic, len(apps), within=60)
        letters = await read_topic(infra, dead_letter_topic(scratch_topic.name), 2, within=30)
    finally:
        await consumer.stop()
        await asyncio.wait_for(running, timeout=30)

    events = [decode(r.value, CreditDecision) for r in records]
    by_application = {
        e.payload.application_id: (e, r) for e, r in zip(events, records, strict=True)
    }
    assert len(by_application) == len(apps)
    for event, record in by_application.values():
        assert event.event_id == event.payload.decision_id  # a replay deduplicates downstream
        assert event.envelope.producer == "scoring"
        carried = trace.get_current_span(extract_kafka_context(record.headers)).get_span_context()
        assert carried.trace_id == trace_ids[event.payload.application_id]
        assert len(event.payload.repayment_attention) == 24
        assert sum(event.payload.repayment_attention) == pytest.approx(1.0, abs=1e-4)

    # once the broker has them, the ledger keeps only their outcomes, and the synchronous path
    # answers the same applications with the same decisions without publishing them again
    await until_settled(scorer, apps)
    server = await start_server(scorer, host="127.0.0.1", port=0, publisher=publisher)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        sync = await scoring_pb2_grpc.ScoringServiceStub(channel).ScoreBatch(
            scoring_pb2.ScoreBatchRequest(applications=apps)
        )
    finally:
        await channel.close()
        await server.stop(None)
        await publisher.stop()  # flushes anything the synchronous path queued
    for result in sync.results:
        assert_same(result.decision, by_application[result.decision.application_id][0].payload)
        assert not result.decision.features  # the outcome: its inputs are on the topic
    with pytest.raises(AssertionError, match=f"got {len(apps)} of {len(apps) + 1} records"):
        await read_topic(infra, kafka_settings.decisions_topic, len(apps) + 1, within=5)

    reasons = {}
    for record in letters:
        letter = decode(record.value, DeadLetter).payload
        inner = decode(letter.source_value, LoanApplicationSubmitted).payload
        reasons[inner.application_id] = letter.reason
    assert reasons == {
        "scoring-test-unknown": "unknown_member",
        "scoring-test-invalid": "invalid_application",
    }


async def test_a_synchronous_decision_records_its_application_once_and_is_not_decided_again(
    world: World,
    scorer: Scorer,
    settings: ScoringSettings,
    infra: InfraSettings,
    scratch_topic: TopicSpec,
) -> None:
    """What the console's fairness tables, the audit chain, outcomes and the retrainer read from
    loan.applications holds the applications loan officers scored synchronously too."""
    apps = [
        LoanApplicationSubmitted(
            application_id=f"sync-{uuid.uuid4().hex[:8]}", **_content(a), attributes=attributes
        )
        for a, attributes in zip(
            applications(world)[:3],
            [{"gender": "female", "age_band": "25-34"}, {"gender": "male"}, {}],
            strict=True,
        )
    ]
    sync_settings = await scratch_settings(settings, infra, scratch_topic)
    publisher = DecisionPublisher(sync_settings)
    await publisher.start()
    server = await start_server(scorer, host="127.0.0.1", port=0, publisher=publisher)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    consumer = build_consumer(sync_settings, scorer, publisher)
    try:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        one = await stub.Score(scoring_pb2.ScoreRequest(application=apps[0]))
        rest = await stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(applications=apps[1:]))
        await until_settled(scorer, apps)  # the ledger keeps only their outcomes
        # a retry after that is answered from the outcome and publishes nothing again
        again = await stub.Score(scoring_pb2.ScoreRequest(application=apps[0]))
        decided = [one.decision, *(r.decision for r in rest.results)]
        assert again.decision.decision_id == one.decision.decision_id
        # the scoring consumer reads the recorded applications and decides none of them again
        skipped_before = already_decided()
        await consumer.start()
        running = asyncio.create_task(consumer.run())
        try:
            recorded = await read_topic(infra, scratch_topic.name, len(apps), within=30)
            with pytest.raises(AssertionError, match=f"got {len(apps)} of {len(apps) + 1}"):
                await read_topic(infra, scratch_topic.name, len(apps) + 1, within=3)
            for _ in range(100):  # the consumer's poll
                if already_decided() >= skipped_before + len(apps):
                    break
                await asyncio.sleep(0.1)
        finally:
            await consumer.stop()
            await asyncio.wait_for(running, timeout=30)
    finally:
        await channel.close()
        await server.stop(None)
        await publisher.stop()

    assert already_decided() == skipped_before + len(apps)
    events = [decode(r.value, LoanApplicationSubmitted) for r in recorded]
    by_id = {e.payload.application_id: e for e in events}
    assert sorted(by_id) == sorted(a.application_id for a in apps)
    for application, decision in zip(apps, decided, strict=True):
        event = by_id[application.application_id]
        assert event.payload.decision_id == decision.decision_id
        assert event.envelope.producer == "scoring"
        # the gateway's id for the same application: both paths deduplicate as one event
        assert event.event_id == application_event_id(DEV_TENANT, application.application_id)
        assert event.envelope.subject == application.member_id
        copy = LoanApplicationSubmitted()
        copy.CopyFrom(event.payload)
        copy.ClearField("decision_id")
        assert copy == application  # attributes (the groups fairness is measured by) included
    published = await read_topic(infra, sync_settings.decisions_topic, len(apps), within=10)
    assert sorted(decode(r.value, CreditDecision).payload.decision_id for r in published) == sorted(
        d.decision_id for d in decided
    )
    with pytest.raises(AssertionError, match=f"got {len(apps)} of {len(apps) + 1} records"):
        await read_topic(infra, sync_settings.decisions_topic, len(apps) + 1, within=3)


async def scratch_settings(
    settings: ScoringSettings, infra: InfraSettings, applications: TopicSpec
) -> ScoringSettings:
    """Scoring on this test's own applications and decisions topics, in a group of its own."""
    decisions = TopicSpec(f"test.decisions.{uuid.uuid4().hex[:12]}", partitions=3, retention_days=1)
    await ensure_topics(infra.kafka_bootstrap, [decisions])
    return settings.model_copy(
        update={
            "applications_topic": applications.name,
            "decisions_topic": decisions.name,
            "consumer_group": f"scoring-test-{uuid.uuid4().hex[:8]}",
        }
    )


async def until_settled(scorer: Scorer, apps: list[LoanApplicationSubmitted]) -> None:
    """Wait until the ledger keeps only these applications' outcomes: the broker has them."""
    keys = [ledger_key(a) for a in apps]
    for _ in range(100):
        if all(e is not None and e.recorded for e in await scorer.ledger.lookup(keys)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("scoring never told the ledger that the broker has the decisions")


def already_decided() -> float:
    name = "alama_scoring_already_decided_applications_total"
    return REGISTRY.get_sample_value(name) or 0.0


def _content(a: LoanApplicationSubmitted) -> dict[str, object]:
    return {
        "tenant_id": a.tenant_id,
        "member_id": a.member_id,
        "sacco_id": a.sacco_id,
        "product": a.product,
        "amount_kes": a.amount_kes,
        "term_months": a.term_months,
    }


async def test_a_newly_promoted_bundle_is_swapped_in(
    scorer: Scorer, bundle_root: Path, world: World
) -> None:
    old = scorer.model_version
    app = applications(world)[0]
    (before,) = await scorer.score([app], path="grpc")
    copy = bundle_root / f"{old}-next"
    shutil.copytree(bundle_root / old, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["version"] = copy.name
    (copy / "manifest.json").write_text(json.dumps(manifest))
    in_flight = asyncio.create_task(scorer.score([app] * 50, path="grpc"))
    await asyncio.sleep(0)  # the batch has started and pinned its model
    promote_bundle(copy.name, root=bundle_root)
    assert await scorer.reload_if_promoted()
    assert scorer.model_version == copy.name
    assert all(o.decision and o.decision.model_version == old for o in await in_flight)
    (again,) = await scorer.score([app], path="grpc")
    assert again.decision == before.decision  # an application decided stays decided
    renewed = LoanApplicationSubmitted()
    renewed.CopyFrom(app)
    renewed.application_id = f"{app.application_id}-renewed"
    (after,) = await scorer.score([renewed], path="grpc")
    assert before.decision and after.decision
    assert after.decision.model_version == copy.name
    assert after.decision.decision_id != before.decision.decision_id
    assert after.decision.probability_of_default == pytest.approx(
        before.decision.probability_of_default, abs=1e-12
    )


def test_application_features_equal_feasts_on_demand_path(
    settings: ScoringSettings, world: World
) -> None:
    """Scoring applies the on-demand view's function itself; the inputs must not change."""
    import numpy as np

    from services.common.feast_config import open_feature_store
    from services.scoring.online_features import (
        FeastOnDemandFeatures,
        OnlineFeatures,
        RedisOnlineFeatures,
    )

    store = open_feature_store(settings.infra)
    apps = [*applications(world), unknown_member()]
    reference = FeastOnDemandFeatures(store).fetch(apps)
    for source in (OnlineFeatures(store), RedisOnlineFeatures(store)):
        batch = source.fetch(apps)
        assert list(batch.known) == list(reference.known) and not batch.known[-1]
        rows = np.flatnonzero(batch.known)
        ours, feasts = batch.model_inputs(rows), reference.model_inputs(rows)
        for name in ("tabular", "static", "repayments", "mobile_money"):
            np.testing.assert_allclose(
                getattr(ours, name), getattr(feasts, name), rtol=0, atol=1e-9
            )


def write_online(
    store: FeatureStore, view: str, member: str, values: dict[str, object], at: datetime
) -> None:
    """One row written by Feast's own Redis writer (what materialize and push call)."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    protos = {
        name: Value(double_list_val={"val": v}) if isinstance(v, list) else Value(double_val=v)
        for name, v in values.items()
    }
    key = EntityKey(join_keys=["member_id"], entity_values=[Value(string_val=member)])
    RedisOnlineStore().online_write_batch(
        store.config, store.get_feature_view(view), [(key, protos, at, None)], None
    )


def test_one_round_trip_read_equals_feasts_sdk(settings: ScoringSettings, world: World) -> None:
    """The pipelined Redis read returns what `get_online_features` returns, value for value:
    every view of the service, members Feast does not know, members with some views or some
    values missing, rows older than their view's ttl, a member asked for twice."""
    import numpy as np

    from services.common.feast_config import open_feature_store
    from services.common.features import SNAPSHOT_COLUMNS
    from services.scoring.online_features import (
        SEQUENCE_STEPS,
        STORED_FEATURES,
        OnlineFeatures,
        RedisOnlineFeatures,
    )

    store = open_feature_store(settings.infra)
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    # Feast holds each member under its tenant's key (services.common.members)
    partial, stale, views_only = (
        member_key(DEV_TENANT, f"M-{case}-{run}") for case in ("partial", "stale", "views")
    )
    nobody = member_key(DEV_TENANT, UNKNOWN_MEMBER)
    # a profile with only some values, mobile money with one sequence and no aggregates
    write_online(
        store, "member_profile", partial, {"tenure_months": 7.0, "deposits_kes": 1.5e4}, now
    )
    write_online(store, "mobile_money_sequence", partial, {"mm_inflow_seq": [3.0] * 13}, now)
    # 400 days old: older than member_profile's ttl (62 days) and bureau_summary's (400)
    old = now - timedelta(days=401)
    profile = store.get_feature_view("member_profile")
    assert profile.ttl is not None and now - old > profile.ttl
    write_online(store, "member_profile", stale, {n: 2.0 for n in SNAPSHOT_COLUMNS}, old)
    write_online(store, "bureau_summary", stale, {"bureau_accounts": 3.0}, old)
    # views but no profile: repayments only
    write_online(
        store,
        "repayment_history",
        views_only,
        {"rp_months_observed": 4.0, "rp_mask_seq": [1.0] * 24},
        now,
    )
    known = [member_key(a.tenant_id, a.member_id) for a in applications(world)]
    members = [*known, nobody, partial, stale, views_only, known[0], nobody]

    fast = RedisOnlineFeatures(store)
    scalars, sequences = fast.stored(members)
    frame = OnlineFeatures(store).stored_frame(members)  # Feast's SDK
    assert len(fast.views) == 5 and len(frame) == len(members)
    for name in STORED_FEATURES:
        np.testing.assert_array_equal(scalars[name], frame[name].to_numpy(dtype=np.float64), name)
    for name, steps in SEQUENCE_STEPS.items():
        expected = np.vstack([np.zeros(steps) if v is None else np.asarray(v) for v in frame[name]])
        np.testing.assert_array_equal(sequences[name], expected, name)
    # what the cases above must have covered
    at = {m: i for i, m in reversed(list(enumerate(members)))}
    assert np.isnan(scalars["tenure_months"][at[nobody]])
    assert scalars["tenure_months"][at[partial]] == 7.0 and np.isnan(
        scalars["n_guarantors"][at[partial]]
    )
    assert np.isnan(scalars["mm_inflow_sum_90d"][at[partial]])
    assert sequences["mm_inflow_seq"][at[partial]].tolist() == [3.0] * 13
    assert not sequences["mm_outflow_seq"][at[partial]].any()
    # Feast's SDK returns a row older than its view's ttl (its Redis read applies no ttl), so
    # the fast path does too; a Feast that starts enforcing it fails the equality above first
    assert (
        scalars["tenure_months"][at[stale]] == 2.0 and scalars["bureau_accounts"][at[stale]] == 3.0
    )
    assert np.isnan(scalars["tenure_months"][at[views_only]])
    assert scalars["rp_months_observed"][at[views_only]] == 4.0
    assert not np.isnan(scalars["tenure_months"][: len(known)]).any()
    assert not np.isnan(scalars["mm_inflow_sum_90d"][: len(known)]).all()

    # and the whole batch, application features and who is known included
    apps = [
        LoanApplicationSubmitted(
            application_id=f"fast-read-{i}",
            tenant_id=split_member_key(member)[0],
            member_id=split_member_key(member)[1],
            product=PRODUCTS["business"],
            amount_kes=25_000.0 + i,
            term_months=1 + i % 24,
        )
        for i, member in enumerate(members)
    ]
    ours, sdk = fast.fetch(apps), OnlineFeatures(store).fetch(apps)
    np.testing.assert_array_equal(ours.tabular, sdk.tabular)
    for name in SEQUENCE_STEPS:
        np.testing.assert_array_equal(ours.sequences[name], sdk.sequences[name])
    assert ours.known.tolist() == sdk.known.tolist()
    assert not ours.known[at[nobody]] and not ours.known[at[views_only]]
    assert ours.known[at[partial]] and ours.known[at[stale]] and ours.known[: len(known)].all()

    # another SACCO's members with the same ids are other people: none of these features
    elsewhere = [LoanApplicationSubmitted() for _ in known]
    for theirs, app in zip(elsewhere, apps, strict=False):
        theirs.CopyFrom(app)
        theirs.tenant_id = "sacco-elsewhere"
    assert not fast.fetch(elsewhere).known.any()
    theirs_stored, _ = fast.stored(
        [member_key("sacco-elsewhere", m) for m in (split_member_key(k)[1] for k in known)]
    )
    assert all(np.isnan(values).all() for values in theirs_stored.values())


async def test_decisions_equal_the_dataframe_path(settings: ScoringSettings, world: World) -> None:
    """The fast path decides exactly what the SDK-and-DataFrame path decided before it: same
    ids, PD, score, band, reasons, features and attention; and it carries the contributions and
    the LSTM's sequence inputs exactly as Feast's SDK returns them."""
    import numpy as np

    from services.common.bundle import load_bundle
    from services.common.feast_config import open_feature_store
    from services.common.features import (
        MOBILE_MONEY_SEQUENCES,
        REPAYMENT_SEQUENCES,
        model_inputs,
    )
    from services.scoring.decisions import build_decisions
    from services.scoring.ledger import MemoryLedger
    from services.scoring.online_features import OnlineFeatures, RedisOnlineFeatures

    store = open_feature_store(settings.infra)
    bundle = load_bundle(settings.bundle_dir)
    run = uuid.uuid4().hex[:8]
    apps = []
    for app in applications(world):
        fresh = LoanApplicationSubmitted()
        fresh.CopyFrom(app)
        fresh.application_id = f"{app.application_id}-{run}"
        apps.append(fresh)

    # before: Feast's SDK, a DataFrame, model_inputs on it
    frame = OnlineFeatures(store).frame(apps)
    inputs = model_inputs(frame)
    tabular = inputs.tabular.astype(np.float64)
    before = build_decisions(
        apps,
        bundle.score(inputs),
        tabular,
        bundle.contributions(inputs.tabular),
        model_version=bundle.version,
        decided_at=datetime.now(UTC),
    )
    # now: the scorer on the one-round-trip read
    scorer = Scorer(
        RedisOnlineFeatures(store),
        bundle,
        bundle_dir=settings.bundle_dir,
        ledger=MemoryLedger(),
        threads=1,
    )
    try:
        outcomes = await scorer.score(apps, path="grpc")
    finally:
        scorer.close()
    after = [o.decision for o in outcomes]
    assert all(d is not None for d in after)
    expected_contributions = bundle.contributions(inputs.tabular)[:, bundle.columns]
    for row, (old, new, carried) in enumerate(
        zip(before, after, expected_contributions, strict=True)
    ):
        assert new is not None
        assert list(new.contributions) == carried.tolist()
        sequences = (*REPAYMENT_SEQUENCES, *MOBILE_MONEY_SEQUENCES)
        assert set(new.sequences) == set(sequences)
        for name in sequences:
            sdk = np.asarray(frame[name].iloc[row], dtype=np.float64)
            assert list(new.sequences[name].values) == sdk.tolist()
        same = CreditDecision()
        same.CopyFrom(new)
        same.ClearField("contributions")
        same.ClearField("sequences")
        same.decided_at.CopyFrom(old.decided_at)
        assert same == old  # every field, exactly
    assert any(d.reasons for d in before)
