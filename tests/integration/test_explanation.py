"""The explanation service on the real Kafka and PostgreSQL, with decisions from a real bundle.

The decisions are made the way scoring makes them: the tiny world's features for a few
applications (computed by the shared feature code), the tiny bundle's ONNX models, its native GBM's
TreeSHAP for the reasons. Every test uses its own topics, consumer group and PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc
import lightgbm
import numpy as np
import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from prometheus_client import REGISTRY

from services.common import features as F
from services.common.bundle import load_bundle
from services.common.envelope import decode, wrap
from services.common.kafka import create_producer, publish, trace_id_from_headers
from services.common.postgres import create_pool
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, DecisionBand
from services.common.protos.alama.events.v1.envelope_pb2 import DeadLetter
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation, Explainer
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.protos.alama.explanation.v1 import explanation_pb2, explanation_pb2_grpc
from services.common.settings import InfraSettings
from services.common.telemetry import inject_grpc_metadata
from services.common.topics import TopicSpec, dead_letter_topic, ensure_topics
from services.common.vocabulary import PRODUCTS
from services.explanation.__main__ import build_explainer, serve
from services.explanation.consumer import build_consumer
from services.explanation.explainer import ExplainerPool, explanation_id
from services.explanation.publisher import ExplanationPublisher
from services.explanation.server import start_server
from services.explanation.settings import ExplanationSettings
from services.explanation.store import DecisionStore, StoredDecision
from services.scoring.decisions import build_decisions
from tests.integration.kafka_helpers import read_topic
from training.profiles import get_profile
from training.world import generate_world

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.integration
N_DECISIONS = 24


@dataclass(frozen=True)
class Decisions:
    """Real decisions of the tiny bundle and the native GBM's TreeSHAP for each of them."""

    bundle_root: Path
    model_version: str
    decisions: list[CreditDecision]
    pred_contrib: dict[str, dict[str, float]]  # decision id -> feature -> contribution


@pytest.fixture(scope="module")
def made(tiny_bundle: Path) -> Decisions:
    profile = get_profile("tiny")
    world = generate_world(profile.n_members, profile.seed)  # the world the bundle learnt from
    apps = world.applications.drop_duplicates("member_id").head(N_DECISIONS)
    members = pd.Index(apps["member_id"].astype(str))
    as_of = pd.Series(pd.to_datetime(apps["applied_at"], utc=True).to_numpy(), index=members)
    member = F.profile_features(world.profile_snapshots, as_of)
    mobile = F.mobile_money_features(world.mobile_money, as_of)
    repay = F.repayment_features(world.repayments, as_of)
    inflow = mobile["mm_inflow_sum_90d"]
    application = F.application_features(
        apps["amount_kes"], apps["term_months"], apps["product"], member, inflow
    )
    application.index = members
    bureau = F.bureau_features(pd.DataFrame(), as_of)  # the world has no bureau table: zeros
    frame = pd.concat([member, mobile, repay, bureau, application], axis=1).reset_index(drop=True)
    inputs = F.model_inputs(frame)
    bundle = load_bundle(tiny_bundle)
    tabular = inputs.tabular.astype(np.float64)
    contributions = bundle.contributions(tabular)  # what scoring puts in each decision
    requests = [
        LoanApplicationSubmitted(
            application_id=f"explanation-test-{a.application_id}-{uuid.uuid4().hex[:6]}",
            member_id=str(a.member_id),
            amount_kes=float(a.amount_kes),
            term_months=int(a.term_months),
        )
        for a in apps.itertuples()
    ]
    decisions = build_decisions(
        requests,
        bundle.score(inputs),
        tabular,
        contributions,
        model_version=bundle.version,
        decided_at=datetime.now(UTC),
    )
    return Decisions(
        bundle_root=tiny_bundle.parent,
        model_version=bundle.version,
        decisions=decisions,
        pred_contrib={
            d.decision_id: dict(zip(F.TABULAR_FEATURES, contributions[i], strict=True))
            for i, d in enumerate(decisions)
        },
    )


@dataclass
class Env:
    settings: ExplanationSettings
    store: DecisionStore
    pool: asyncpg.Pool
    explainer: ExplainerPool


@pytest.fixture
async def env(
    infra: InfraSettings, made: Decisions, scratch_topic: TopicSpec
) -> AsyncIterator[Env]:
    explanations = TopicSpec(
        f"test.explanations.{uuid.uuid4().hex[:12]}", partitions=3, retention_days=1
    )
    await ensure_topics(infra.kafka_bootstrap, [explanations])
    schema = f"explanation_test_{uuid.uuid4().hex[:12]}"
    settings = ExplanationSettings(
        infra=infra,
        metrics_port=0,
        grpc_port=0,
        bundle_root=str(made.bundle_root),
        decisions_topic=scratch_topic.name,
        explanations_topic=explanations.name,
        consumer_group=f"explanation-test-{uuid.uuid4().hex[:8]}",
        db_schema=schema,
        max_batch=16,
    )
    pool = await create_pool(infra, max_size=4)
    store = DecisionStore(pool, schema)
    await store.create_schema()
    explainer = build_explainer(settings)
    try:
        yield Env(settings, store, pool, explainer)
    finally:
        explainer.close()
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()


async def publish_decisions(
    infra: InfraSettings, topic: str, decisions: list[CreditDecision]
) -> dict[str, str]:
    """Publish each decision in its own trace, as scoring would; returns decision id -> trace."""
    producer = create_producer(infra, client_id="explanation-test")
    await producer.start()
    traces: dict[str, str] = {}
    tracer = trace.get_tracer("test")
    try:
        for decision in decisions:
            with tracer.start_as_current_span("scoring decide") as span:
                traces[decision.decision_id] = format(span.get_span_context().trace_id, "032x")
                envelope = wrap(
                    decision,
                    producer="scoring",
                    subject=decision.member_id,
                    event_id=decision.decision_id,
                )
                await (await publish(producer, topic, envelope))
    finally:
        await producer.stop()
    return traces


async def rows(pool: asyncpg.Pool, sql: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(await conn.fetch(sql))


def explanations_by_id(records: list[ConsumerRecord]) -> dict[str, list[ConsumerRecord]]:
    grouped: dict[str, list[ConsumerRecord]] = defaultdict(list)
    for record in records:
        grouped[decode(record.value, CreditExplanation).event_id].append(record)
    return grouped


async def test_consumer_explains_stores_and_publishes_each_decision(
    env: Env,
    made: Decisions,
    infra: InfraSettings,
    scratch_topic: TopicSpec,
    spans: InMemorySpanExporter,
) -> None:
    decisions = made.decisions
    unknown = CreditDecision()
    unknown.CopyFrom(decisions[0])
    unknown.decision_id, unknown.model_version = str(uuid.uuid4()), "tiny-19700101000000-nowhere"
    producer = create_producer(infra, client_id="explanation-test-garbage")
    await producer.start()
    try:
        await producer.send_and_wait(scratch_topic.name, b"\x00 not an envelope", key=b"junk")
    finally:
        await producer.stop()
    traces = await publish_decisions(infra, scratch_topic.name, [unknown, *decisions])

    publisher = ExplanationPublisher(env.settings)
    await publisher.start()
    consumer = build_consumer(env.settings, env.explainer, env.store, publisher)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    topic = env.settings.explanations_topic
    try:
        first = await read_topic(infra, topic, len(decisions), within=90)
        letters = await read_topic(infra, dead_letter_topic(scratch_topic.name), 2, within=30)
        # the same decisions again (a replay upstream): explained again, stored once
        traces_again = await publish_decisions(infra, scratch_topic.name, decisions)
        both = await read_topic(infra, topic, 2 * len(decisions), within=90)
    finally:
        await consumer.stop()
        await asyncio.wait_for(running, timeout=30)
        await publisher.stop()

    # dead letters: the undecodable record and the decision of an unknown model, with reasons
    reasons = {decode(r.value, DeadLetter).payload.reason: r for r in letters}
    assert set(reasons) == {"undecodable_envelope", "unknown_model_version"}
    unknown_letter = decode(reasons["unknown_model_version"].value, DeadLetter).payload
    assert "tiny-19700101000000-nowhere" in unknown_letter.detail

    # one explanation event per decision, continuing the decision's trace
    assert len(first) == len(decisions)
    by_decision = {d.decision_id: d for d in decisions}
    booster = lightgbm.Booster(model_file=str(made.bundle_root / made.model_version / "gbm.txt"))
    for record in first:
        event = decode(record.value, CreditExplanation)
        explanation = event.payload
        decision = by_decision[explanation.decision_id]
        assert event.event_id == explanation_id(decision.decision_id)
        assert event.envelope.producer == "explanation"
        assert record.key == decision.application_id.encode()
        assert trace_id_from_headers(record.headers) == traces[decision.decision_id]
        assert explanation.model_version == made.model_version
        # TreeSHAP equals LightGBM's own pred_contrib on the bundle's gbm.txt
        contributions = {c.feature: c.contribution for c in explanation.contributions}
        assert set(contributions) == set(F.TABULAR_FEATURES)
        expected = made.pred_contrib[decision.decision_id]
        for name, value in contributions.items():
            assert value == pytest.approx(expected[name], abs=1e-9), name
        row = np.array([[decision.features[n] for n in booster.feature_name()]])
        bias = float(np.asarray(booster.predict(row, pred_contrib=True))[0, -1])
        raw = float(np.asarray(booster.predict(row, raw_score=True))[0])
        assert sum(contributions.values()) + bias == pytest.approx(raw, abs=1e-9)
        assert all(c.explainer == Explainer.EXPLAINER_TREE_SHAP for c in explanation.contributions)
        # the member reads the same words as in the decision
        shap_reasons = [r for r in explanation.reasons if not r.code.endswith("_attention")]
        assert [(r.code, r.description) for r in shap_reasons] == [
            (r.code, r.description) for r in decision.reasons
        ]
        assert list(explanation.repayment_attention) == list(decision.repayment_attention)
        assert list(explanation.mobile_money_attention) == list(decision.mobile_money_attention)
    assert any(len(r.payload.reasons) for r in (decode(x.value, CreditExplanation) for x in first))

    # the replay: the very same events again, under the replayed records' traces, stored once
    grouped = explanations_by_id(both)
    assert set(grouped) == {explanation_id(d.decision_id) for d in decisions}
    for decision in decisions:
        copies = grouped[explanation_id(decision.decision_id)]
        assert len(copies) == 2
        assert copies[0].value == copies[1].value
        assert {trace_id_from_headers(c.headers) for c in copies} == {
            traces[decision.decision_id],
            traces_again[decision.decision_id],
        }
    stored = await rows(env.pool, f"SELECT decision_id, trace_id FROM {env.store.schema}.decisions")
    assert sorted(r["decision_id"] for r in stored) == sorted(by_decision)
    assert all(r["trace_id"] == traces[r["decision_id"]] for r in stored)
    explained = await rows(env.pool, f"SELECT decision_id FROM {env.store.schema}.explanations")
    assert sorted(r["decision_id"] for r in explained) == sorted(by_decision)

    # the PRODUCER span of each explanation belongs to the decision's trace
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    producer_traces = {
        format(s.context.trace_id, "032x")
        for s in spans.get_finished_spans()
        if s.name == f"{topic} publish"
    }
    assert set(traces.values()) - {traces[unknown.decision_id]} <= producer_traces


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_grpc_serves_stored_decisions_and_explains_on_demand(
    env: Env, made: Decisions, spans: InMemorySpanExporter
) -> None:
    first, second, third = made.decisions[:3]
    outcomes = await env.explainer.explain(
        [first, second], explained_at=datetime(2026, 1, 1, tzinfo=UTC), path="kafka"
    )
    stored_explanations = [o.explanation for o in outcomes if o.explanation is not None]
    await env.store.save_batch(
        [StoredDecision(d, "") for d in (first, second, third)], stored_explanations
    )
    later = CreditDecision()
    later.CopyFrom(first)
    later.decision_id = str(uuid.uuid4())
    later.decided_at.FromDatetime(first.decided_at.ToDatetime(tzinfo=UTC) + timedelta(hours=1))
    await env.store.save_decisions([StoredDecision(later, "")])

    server = await start_server(env.store, env.explainer, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = explanation_pb2_grpc.ExplanationServiceStub(channel)
    try:
        by_id = await stub.GetDecision(
            explanation_pb2.GetDecisionRequest(decision_id=first.decision_id)
        )
        assert by_id.decision == first
        latest = await stub.GetDecision(
            explanation_pb2.GetDecisionRequest(application_id=first.application_id)
        )
        assert latest.decision == later  # the latest decided_at wins
        only = await stub.GetDecision(
            explanation_pb2.GetDecisionRequest(application_id=second.application_id)
        )
        assert only.decision == second

        # stored: exactly what was stored, not explained again
        with trace.get_tracer("test").start_as_current_span("gateway call") as parent:
            stored = await stub.GetExplanation(
                explanation_pb2.GetExplanationRequest(decision_id=first.decision_id),
                metadata=inject_grpc_metadata(),
            )
        assert stored.explanation == stored_explanations[0]

        # known but not explained: explained on demand, then stored
        on_demand_before = metric("alama_explanation_on_demand_total")
        assert await env.store.explanation(third.decision_id) is None
        fresh = await stub.GetExplanation(
            explanation_pb2.GetExplanationRequest(decision_id=third.decision_id)
        )
        assert fresh.explanation.decision_id == third.decision_id
        contributions = {c.feature: c.contribution for c in fresh.explanation.contributions}
        for name, value in made.pred_contrib[third.decision_id].items():
            assert contributions[name] == pytest.approx(value, abs=1e-9)
        assert await env.store.explanation(third.decision_id) == fresh.explanation
        assert metric("alama_explanation_on_demand_total") == on_demand_before + 1
        again = await stub.GetExplanation(
            explanation_pb2.GetExplanationRequest(decision_id=third.decision_id)
        )
        assert again.explanation == fresh.explanation
        assert metric("alama_explanation_on_demand_total") == on_demand_before + 1

        for call, request in (
            (stub.GetExplanation, explanation_pb2.GetExplanationRequest(decision_id="nope")),
            (stub.GetDecision, explanation_pb2.GetDecisionRequest(decision_id="nope")),
            (stub.GetDecision, explanation_pb2.GetDecisionRequest(application_id="nope")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(request)  # type: ignore[operator]
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert "nope" in (raised.value.details() or "")
        for call, request in (
            (stub.GetExplanation, explanation_pb2.GetExplanationRequest()),
            (stub.GetDecision, explanation_pb2.GetDecisionRequest()),
            (stub.GetDecision, explanation_pb2.GetDecisionRequest(decision_id="")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(request)  # type: ignore[operator]
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            metric("alama_explanation_grpc_requests_total", method="GetDecision", code="NOT_FOUND")
            >= 2
        )

        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "alama.explanation.v1.ExplanationService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await server.stop(None)

    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    server_spans = [s for s in spans.get_finished_spans() if s.name.endswith("/GetExplanation")]
    assert any(s.context.trace_id == parent.get_span_context().trace_id for s in server_spans)


async def committed_everything(settings: ExplanationSettings, infra: InfraSettings) -> bool:
    """Whether the service's group has committed every record of the decisions topic."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        partitions = [
            TopicPartition(settings.decisions_topic, p)
            for p in reader.partitions_for_topic(settings.decisions_topic) or ()
        ]
        ends = await reader.end_offsets(partitions)
        for tp in partitions:
            if ends[tp] and (await reader.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await reader.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        # The condition is the group's committed offsets: there is no event to await, poll it.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.2)


async def test_service_runs_consumer_and_server_and_stops_cleanly(
    env: Env, made: Decisions, infra: InfraSettings, scratch_topic: TopicSpec
) -> None:
    decisions = made.decisions[:4]
    await publish_decisions(infra, scratch_topic.name, decisions)
    stop = asyncio.Event()
    service = asyncio.create_task(serve(env.settings, stop))
    try:
        records = await read_topic(
            infra, env.settings.explanations_topic, len(decisions), within=90
        )
        assert {decode(r.value, CreditExplanation).payload.decision_id for r in records} == {
            d.decision_id for d in decisions
        }
        await wait_for(lambda: committed_everything(env.settings, infra))
    finally:
        stop.set()
        await asyncio.wait_for(service, timeout=30)
    assert service.exception() is None
    assert await env.store.decision(decisions[0].decision_id) == decisions[0]


async def test_a_persons_review_is_kept_and_served_with_its_decision(
    env: Env, made: Decisions, infra: InfraSettings
) -> None:
    """credit.review_outcomes is consumed like the decisions: GetDecision then carries the
    latest review (what GET /v1/decisions/{id} reports), never to another tenant, and a
    member's erasure takes the reviews with the decisions."""
    decision = made.decisions[0]
    await env.store.save_decisions([StoredDecision(decision, "")])
    reviews_topic = TopicSpec(f"test.reviews.{uuid.uuid4().hex[:12]}", 3, 1)
    await ensure_topics(infra.kafka_bootstrap, [reviews_topic])
    settings = env.settings.model_copy(update={"review_outcomes_topic": reviews_topic.name})

    def review(review_id: str, band: int, minute: int) -> ReviewOutcome:
        outcome = ReviewOutcome(
            review_id=review_id,
            decision_id=decision.decision_id,
            application_id=decision.application_id,
            tenant_id=decision.tenant_id,
            final_band=band,  # type: ignore[arg-type]
            reason_codes=["REVIEW_GUARANTORS"],
        )
        outcome.reviewed_at.FromDatetime(datetime(2026, 11, 29, 8, minute, tzinfo=UTC))
        return outcome

    first = review("r-first", DecisionBand.DECISION_BAND_DECLINE, 0)
    appeal = review("r-appeal", DecisionBand.DECISION_BAND_APPROVE, 30)
    producer = create_producer(infra, client_id="explanation-test-reviews")
    await producer.start()
    try:
        for outcome in (appeal, first, appeal):  # out of order, and one redelivered
            envelope = wrap(outcome, producer="console", event_id=outcome.review_id)
            await (await publish(producer, reviews_topic.name, envelope))
    finally:
        await producer.stop()

    publisher = ExplanationPublisher(settings)
    await publisher.start()
    consumer = build_consumer(settings, env.explainer, env.store, publisher)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            while len(await rows(env.pool, f"SELECT 1 FROM {settings.db_schema}.reviews")) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await asyncio.wait_for(running, timeout=30)
        await publisher.stop()

    server = await start_server(env.store, env.explainer, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = explanation_pb2_grpc.ExplanationServiceStub(channel)
    try:
        mine = await stub.GetDecision(
            explanation_pb2.GetDecisionRequest(
                decision_id=decision.decision_id, tenant_id=decision.tenant_id
            )
        )
        assert mine.review == appeal  # the latest review stands
        assert mine.decision == decision
    finally:
        await channel.close()
        await server.stop(None)
    assert await env.store.latest_review(decision.decision_id, "another-tenant") is None

    await env.store.erase_member(decision.tenant_id, decision.member_id)
    assert await env.store.latest_review(decision.decision_id) is None


def _with_amount(decision: CreditDecision, amount: float, decision_id: str) -> CreditDecision:
    """The decision's inputs with another loan amount, its ratios recomputed as scoring would."""
    changed = CreditDecision()
    changed.CopyFrom(decision)
    changed.decision_id = decision_id
    features = dict(decision.features)
    product = next(p for p in PRODUCTS.names if features.get(f"product_{p}", 0.0) >= 0.5)
    profile = {
        name: [features[name]]
        for name in (
            "monthly_income_kes",
            "deposits_kes",
            "share_capital_kes",
            "existing_loan_balance_kes",
            "deposits_change_6m_kes",
        )
    }
    ratios = F.application_arrays(
        [amount], [features["term_months"]], [product], profile, [features["mm_inflow_sum_90d"]]
    )
    for name, values in ratios.items():
        changed.features[name] = float(values[0])
    return changed


async def test_a_declines_notice_says_what_would_change_it_by_rescoring_with_its_bundle(
    env: Env, made: Decisions
) -> None:
    """GetOutcomeChanges re-scores a declined decision's own inputs with its own bundle: the
    smaller loan it names is, re-scored the same way, out of the decline band; a decision that
    is not a decline has nothing to change."""
    from services.common.counterfactual import _pd
    from services.explanation.changes import OutcomeChanges

    bundle = load_bundle(made.bundle_root / made.model_version)

    def band(decision: CreditDecision) -> str:
        row = np.array([[decision.features[n] for n in F.TABULAR_FEATURES]])
        return str(bundle.bands.band(_pd(bundle, row, decision.lstm_probability))[0])

    declined = None
    for decision in made.decisions:
        for factor in (2, 4, 8, 16, 32, 64):
            amount = decision.features["amount_kes"] * factor
            candidate = _with_amount(decision, amount, f"declined-{uuid.uuid4().hex[:8]}")
            if band(candidate) == "decline":
                declined = candidate
                break
        if declined is not None:
            break
    assert declined is not None, "no amount makes any tiny-world application a decline"
    declined.band = DecisionBand.DECISION_BAND_DECLINE
    approved = next(d for d in made.decisions if band(d) != "decline")
    await env.store.save_decisions([StoredDecision(declined, ""), StoredDecision(approved, "")])

    server = await start_server(
        env.store,
        env.explainer,
        host="127.0.0.1",
        port=0,
        changes=OutcomeChanges(made.bundle_root),
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = explanation_pb2_grpc.ExplanationServiceStub(channel)
    try:
        answer = await stub.GetOutcomeChanges(
            explanation_pb2.GetExplanationRequest(
                decision_id=declined.decision_id, tenant_id=declined.tenant_id
            )
        )
        nothing = await stub.GetOutcomeChanges(
            explanation_pb2.GetExplanationRequest(decision_id=approved.decision_id)
        )
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.GetOutcomeChanges(explanation_pb2.GetExplanationRequest(decision_id="nope"))
    finally:
        await channel.close()
        await server.stop(None)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(nothing.changes) == []
    by_feature = {c.feature: c for c in answer.changes}
    assert "amount_kes" in by_feature, answer
    smaller = by_feature["amount_kes"]
    assert smaller.en.startswith("Borrowing KES") and smaller.sw.startswith("Kukopa KES")
    named = float(smaller.en.split("KES ")[1].split(" ")[0].replace(",", ""))
    assert named < declined.features["amount_kes"]
    assert band(_with_amount(declined, named, "check")) != "decline"
