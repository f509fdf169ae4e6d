"""Stand-ins for the gateway's backends: gRPC servers implementing the protos from dicts, and
in-memory Kafka and Redis that record what the gateway sent them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.member_rights import (
    ErasureRequest,
    MemberRef,
    MemberRights,
    MemberRightsBackend,
)
from services.common.notices import OutcomeChange
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import (
    CreditDecision,
    DecisionBand,
    ReasonCode,
)
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import (
    CreditExplanation,
    Explainer,
    FeatureContribution,
)
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.protos.alama.explanation.v1 import explanation_pb2, explanation_pb2_grpc
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.telemetry import inject_kafka_headers
from services.gateway.clients import SCORING_SERVICE
from services.gateway.errors import NotFound, UpstreamUnavailable

KNOWN_MEMBERS = frozenset({"M-1", "M-2", "M-3"})
DECIDED_AT = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def decide(application: LoanApplicationSubmitted) -> CreditDecision | scoring_pb2.ScoreError:
    """The fake model: known members are approved at PD 0.04, unknown ones are an error."""
    if application.member_id not in KNOWN_MEMBERS:
        return scoring_pb2.ScoreError(
            application_id=application.application_id,
            code=scoring_pb2.SCORE_ERROR_CODE_UNKNOWN_MEMBER,
            message=f"member {application.member_id} has no features",
        )
    decision = CreditDecision(
        decision_id=f"d-{application.application_id}",
        application_id=application.application_id,
        member_id=application.member_id,
        tenant_id=application.tenant_id,
        model_version="fake-1",
        probability_of_default=0.04,
        score=712,
        band=DecisionBand.DECISION_BAND_APPROVE,
        reasons=[
            ReasonCode(
                code="on_time", description="Repaid on time for 24 months", contribution=-0.4
            )
        ],
    )
    decision.decided_at.FromDatetime(DECIDED_AT)
    return decision


class FakeScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self) -> None:
        self.applications: list[LoanApplicationSubmitted] = []
        self.metadata: list[dict[str, str]] = []

    async def Score(
        self, request: scoring_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        self.applications.append(request.application)
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        if request.application.member_id == "M-unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "model reloading")
        if request.application.member_id == "M-exhausted":  # scoring's batcher queue is full
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "scoring queue is full")
        if request.application.amount_kes > 5_000_000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_APPLICATION: too big")
        outcome = decide(request.application)
        if isinstance(outcome, scoring_pb2.ScoreError):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"UNKNOWN_MEMBER: {outcome.message}")
        assert isinstance(outcome, CreditDecision)
        return scoring_pb2.ScoreResponse(decision=outcome)

    async def ScoreBatch(
        self, request: scoring_pb2.ScoreBatchRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreBatchResponse:
        self.applications.extend(request.applications)
        results = []
        for application in request.applications:
            outcome = decide(application)
            if isinstance(outcome, CreditDecision):
                results.append(scoring_pb2.ScoreResult(decision=outcome))
            else:
                results.append(scoring_pb2.ScoreResult(error=outcome))
        return scoring_pb2.ScoreBatchResponse(results=results)


def stored_decisions() -> dict[str, CreditDecision]:
    """What the fake explanation service knows: one decision for application A-stored, of the
    development tenant (the development API key's)."""
    decision = decide(
        LoanApplicationSubmitted(
            application_id="A-stored", member_id="M-1", amount_kes=1.0, tenant_id="dev-sacco"
        )
    )
    assert isinstance(decision, CreditDecision)
    return {decision.decision_id: decision}


def stored_explanations(decisions: dict[str, CreditDecision]) -> dict[str, CreditExplanation]:
    explanations = {}
    for decision in decisions.values():
        explanation = CreditExplanation(
            decision_id=decision.decision_id,
            application_id=decision.application_id,
            model_version=decision.model_version,
            reasons=decision.reasons,
            contributions=[
                FeatureContribution(
                    feature="late_repayments_6m",
                    value=0.0,
                    contribution=-0.4,
                    explainer=Explainer.EXPLAINER_TREE_SHAP,
                )
            ],
            repayment_attention=[1 / 24] * 24,
            mobile_money_attention=[0.5, 0.5],
        )
        explanation.explained_at.FromDatetime(DECIDED_AT)
        explanations[decision.decision_id] = explanation
    return explanations


class FakeExplanationServicer(explanation_pb2_grpc.ExplanationServiceServicer):
    """ExplanationService over dicts, as the proto describes it (NOT_FOUND when unknown)."""

    def __init__(
        self, decisions: dict[str, CreditDecision], explanations: dict[str, CreditExplanation]
    ) -> None:
        self.decisions = decisions
        self.explanations = explanations
        self.reviews: dict[str, ReviewOutcome] = {}
        self.changes: dict[str, list[explanation_pb2.OutcomeChange]] = {}

    async def GetDecision(
        self, request: explanation_pb2.GetDecisionRequest, context: grpc.aio.ServicerContext
    ) -> explanation_pb2.GetDecisionResponse:
        if request.WhichOneof("key") == "decision_id":
            found = self.decisions.get(request.decision_id)
        else:
            found = next(
                (d for d in self.decisions.values() if d.application_id == request.application_id),
                None,
            )
        if found is not None and request.tenant_id and found.tenant_id != request.tenant_id:
            found = None  # another tenant's: exactly as if it did not exist
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such decision")
            raise AssertionError("abort raises")  # for the type checker: found is set below
        return explanation_pb2.GetDecisionResponse(
            decision=found, review=self.reviews.get(found.decision_id)
        )

    async def GetOutcomeChanges(
        self, request: explanation_pb2.GetExplanationRequest, context: grpc.aio.ServicerContext
    ) -> explanation_pb2.GetOutcomeChangesResponse:
        owner = self.decisions.get(request.decision_id)
        if owner is None or (request.tenant_id and owner.tenant_id != request.tenant_id):
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such decision")
        return explanation_pb2.GetOutcomeChangesResponse(
            changes=self.changes.get(request.decision_id, [])
        )

    async def GetExplanation(
        self, request: explanation_pb2.GetExplanationRequest, context: grpc.aio.ServicerContext
    ) -> explanation_pb2.GetExplanationResponse:
        found = self.explanations.get(request.decision_id)
        owner = self.decisions.get(request.decision_id)
        if owner is not None and request.tenant_id and owner.tenant_id != request.tenant_id:
            found = None
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such decision")
        return explanation_pb2.GetExplanationResponse(explanation=found)


@dataclass
class FakeGrpc:
    server: grpc.aio.Server
    port: int
    scoring: FakeScoringServicer
    explanations: FakeExplanationServicer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_fake_grpc() -> FakeGrpc:
    """Scoring, explanation and health on one in-process server (port 0)."""
    server = grpc.aio.server()
    scoring = FakeScoringServicer()
    decisions = stored_decisions()
    explanations = FakeExplanationServicer(decisions, stored_explanations(decisions))
    scoring_pb2_grpc.add_ScoringServiceServicer_to_server(scoring, server)
    explanation_pb2_grpc.add_ExplanationServiceServicer_to_server(explanations, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set(SCORING_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    return FakeGrpc(server, port, scoring, explanations)


@dataclass
class Published:
    topic: str
    envelope: EventEnvelope
    headers: list[tuple[str, bytes]]


@dataclass
class FakeEvents:
    """Kafka stand-in: records each envelope with the trace headers publish() would add."""

    published: list[Published] = field(default_factory=list)
    down: bool = False

    async def publish(self, topic: str, envelopes: Sequence[EventEnvelope]) -> None:
        if self.down:
            raise UpstreamUnavailable("the event log is unavailable; retry later")
        for envelope in envelopes:
            self.published.append(Published(topic, envelope, inject_kafka_headers()))

    async def ping(self) -> None:
        if self.down:
            raise UpstreamUnavailable("kafka unreachable")

    async def close(self) -> None:
        pass


@dataclass
class FakeReplayStore:
    """Redis stand-in for SET NX with a TTL (expiry is not simulated)."""

    keys: dict[str, int] = field(default_factory=dict)

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = ttl_seconds
        return True

    async def release(self, key: str) -> None:
        self.keys.pop(key, None)

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


class FakeRevocations:
    """The revocation list in memory."""

    def __init__(self) -> None:
        self.revoked_ids: dict[str, datetime] = {}

    async def revoked(self, token_id: str) -> bool:
        return token_id in self.revoked_ids

    async def revoke(self, token_id: str, until: datetime) -> None:
        self.revoked_ids[token_id] = until


class FakeScoring:
    """Python-level scoring (no gRPC), for tests whose app runs on another event loop."""

    def __init__(self, description: scoring_pb2.ModelDescription | None = None) -> None:
        self.description = description or scoring_pb2.ModelDescription(
            model_version="test-v1", inputs=scoring_pb2.MODEL_INPUTS_FEATURE_STORE
        )

    async def describe_model(self) -> scoring_pb2.ModelDescription:
        return self.description

    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision:
        outcome = decide(application)
        if isinstance(outcome, scoring_pb2.ScoreError):
            raise NotFound(outcome.message)
        return outcome

    async def score_batch(
        self, applications: Sequence[LoanApplicationSubmitted]
    ) -> list[scoring_pb2.ScoreResult]:
        results = []
        for application in applications:
            outcome = decide(application)
            if isinstance(outcome, CreditDecision):
                results.append(scoring_pb2.ScoreResult(decision=outcome))
            else:
                results.append(scoring_pb2.ScoreResult(error=outcome))
        return results

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


class FakeExplanations:
    """Python-level explanation service over the same dicts as the gRPC fake."""

    def __init__(self) -> None:
        self.decisions = stored_decisions()
        self.explanations = stored_explanations(self.decisions)
        self.reviews: dict[str, ReviewOutcome] = {}

    async def decision(
        self,
        *,
        tenant: str,
        decision_id: str | None = None,
        application_id: str | None = None,
    ) -> CreditDecision:
        for decision in self.decisions.values():
            if decision.tenant_id != tenant:
                continue
            if decision.decision_id == decision_id or decision.application_id == application_id:
                return decision
        raise NotFound("no such decision")

    async def reviewed_decision(
        self, decision_id: str, *, tenant: str
    ) -> tuple[CreditDecision, ReviewOutcome | None]:
        decision = await self.decision(tenant=tenant, decision_id=decision_id)
        return decision, self.reviews.get(decision_id)

    async def outcome_changes(self, decision_id: str, *, tenant: str) -> list[OutcomeChange]:
        await self.decision(tenant=tenant, decision_id=decision_id)
        return []

    async def explanation(self, decision_id: str, *, tenant: str) -> CreditExplanation:
        owner = self.decisions.get(decision_id)
        if decision_id not in self.explanations or owner is None or owner.tenant_id != tenant:
            raise NotFound("no such decision")
        return self.explanations[decision_id]

    async def close(self) -> None:
        pass


class FakeMemberStore:
    """An in-memory, tenant-scoped member store: (tenant, member id) -> records."""

    tenant_scoped = True

    def __init__(self, name: str, records: dict[tuple[str, str], list[str]]) -> None:
        self.name = name
        self.records = records

    async def holds(self, member: MemberRef) -> bool:
        return (member.tenant, member.member_id) in self.records

    async def export(self, member: MemberRef) -> list[str]:
        return list(self.records.get((member.tenant, member.member_id), []))

    async def erase(self, member: MemberRef) -> int:
        return len(self.records.pop((member.tenant, member.member_id), []))


class FakeMemberAudit(FakeMemberStore):
    """Records erasure requests like the audit chain (by pseudonym), and stays the tenant's."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        super().__init__("audit", records)
        self.erasures: list[tuple[ErasureRequest, dict[str, int]]] = []

    async def holds(self, member: MemberRef) -> bool:
        return await super().holds(member) or any(r.member == member for r, _ in self.erasures)

    async def erase_and_record(
        self, request: ErasureRequest, erased: Mapping[str, int]
    ) -> tuple[int, int | None]:
        count = await self.erase(request.member)
        self.erasures.append((request, dict(erased)))
        return count, len(self.erasures)


MEMBER_KEY = b"unit-test-member-pseudonym-key"


def fake_members(
    records: dict[tuple[str, str], list[str]] | None = None,
) -> tuple[MemberRightsBackend, FakeMemberStore, FakeMemberAudit]:
    """Member rights over two fake stores; `records` seed both (the decisions' copy)."""
    seed = records if records is not None else {("dev-sacco", "M-1"): ["decision d-1"]}
    decisions = FakeMemberStore("decisions", {k: list(v) for k, v in seed.items()})
    audit = FakeMemberAudit({k: [f"audit {x}" for x in v] for k, v in seed.items()})
    return MemberRightsBackend(MemberRights([decisions], audit), MEMBER_KEY), decisions, audit


class FakeErasureStatuses:
    """Erasure requests and completions in a dict, like RedisErasureStatuses."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[str, str], dict[str, str]] = {}

    async def requested(self, tenant: str, request_id: str, member_ref: str, at: str) -> None:
        self.hashes.setdefault((tenant, request_id), {}).update(
            {"requested_at": at, "member_ref": member_ref}
        )

    async def completed(self, tenant: str, request_id: str, store: str, status: str) -> None:
        self.hashes.setdefault((tenant, request_id), {}).setdefault(f"store:{store}", status)

    async def status(self, tenant: str, request_id: str) -> dict[str, str] | None:
        return self.hashes.get((tenant, request_id))
