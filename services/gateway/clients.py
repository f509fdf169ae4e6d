"""The gateway's backends: scoring and explanation over gRPC, Kafka events, the replay store.

Each backend turns its transport's failures into the gateway's domain errors, so routes never see
a gRPC status or a Kafka exception. Every outbound call has a deadline: gRPC calls
``grpc_timeout_seconds`` (a ScoreBatch ``grpc_batch_timeout_seconds``), a Kafka publish
(queueing and the broker's acknowledgement) ``kafka_publish_timeout_seconds``, each Redis call
``redis_timeout_seconds``; past it the caller gets a 503 with Retry-After instead of waiting on a
dependency that is stuck. `Backends` bundles them; app.py opens real ones in its lifespan, tests
inject fakes that satisfy the same protocols.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import grpc
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.kafka import create_producer, publish
from services.common.notices import OutcomeChange
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.explanations_pb2 import CreditExplanation
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewOutcome
from services.common.protos.alama.explanation.v1 import explanation_pb2, explanation_pb2_grpc
from services.common.protos.alama.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.redis_store import create_redis
from services.common.telemetry import inject_grpc_metadata
from services.common.topics import MEMBER_ERASURES, MEMBER_EXPORTS
from services.gateway.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    UpstreamFailed,
    UpstreamUnavailable,
)
from services.gateway.metrics import UPSTREAM_SECONDS
from services.gateway.rate_limits import RateLimiter
from services.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from services.common.member_rights import MemberRightsBackend

log = logging.getLogger(__name__)
tracer = trace.get_tracer("alama.gateway")

SCORING_SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
#: the gateway answers with the outcome and its reasons (schemas.Decision), never the inputs
BASIC = scoring_pb2.DECISION_VIEW_BASIC
EXPLANATION_SERVICE = explanation_pb2.DESCRIPTOR.services_by_name["ExplanationService"].full_name
_UNAVAILABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}


class Scoring(Protocol):
    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision: ...

    async def score_batch(
        self, applications: Sequence[LoanApplicationSubmitted]
    ) -> list[scoring_pb2.ScoreResult]: ...

    async def describe_model(self) -> scoring_pb2.ModelDescription: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class Explanations(Protocol):
    async def decision(
        self,
        *,
        tenant: str,
        decision_id: str | None = None,
        application_id: str | None = None,
    ) -> CreditDecision:
        """The decision, NotFound when unknown or another tenant's."""
        ...

    async def explanation(self, decision_id: str, *, tenant: str) -> CreditExplanation: ...

    async def reviewed_decision(
        self, decision_id: str, *, tenant: str
    ) -> tuple[CreditDecision, ReviewOutcome | None]:
        """The decision with its latest review by a person (None when nobody reviewed it)."""
        ...

    async def outcome_changes(self, decision_id: str, *, tenant: str) -> list[OutcomeChange]:
        """What would lift a decline, where the model can say ([] where it cannot)."""
        ...

    async def close(self) -> None: ...


class Events(Protocol):
    async def publish(self, topic: str, envelopes: Sequence[EventEnvelope]) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class ReplayStore(Protocol):
    async def claim(self, key: str, ttl_seconds: int) -> bool: ...

    async def release(self, key: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def _translate(exc: grpc.aio.AioRpcError, service: str) -> Exception:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(details)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return Conflict(details)
    if code in _UNAVAILABLE:
        return UpstreamUnavailable(f"{service} is unavailable ({code.name}); retry later")
    return UpstreamFailed(f"{service} failed ({code.name})")


#: Answers about the request, not failures of the service: no error status on the span.
_CALLER_ERRORS = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
)


class _GrpcClient:
    """A channel, a deadline and a client span per call carrying the trace to the server."""

    service: str

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout

    async def _call(
        self,
        method: str,
        call: _Unary,
        request: object,
        deadline_s: float | None = None,
    ) -> object:
        started = time.perf_counter()
        outcome = "ok"
        with tracer.start_as_current_span(
            f"{self.service}/{method}",
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": self.service, "rpc.method": method},
        ) as span:
            try:
                return await call(
                    request, timeout=deadline_s or self.timeout, metadata=inject_grpc_metadata()
                )
            except grpc.aio.AioRpcError as exc:
                outcome = exc.code().name.lower()
                span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
                if exc.code() not in _CALLER_ERRORS:
                    span.set_status(Status(StatusCode.ERROR, exc.code().name))
                raise _translate(exc, self.service) from exc
            finally:
                UPSTREAM_SECONDS.labels(self.service, method, outcome).observe(
                    time.perf_counter() - started
                )

    async def close(self) -> None:
        await self.channel.close()


class _Unary(Protocol):
    async def __call__(
        self,
        request: object,
        *,
        timeout: float,  # noqa: ASYNC109 - gRPC's own deadline argument
        metadata: list[tuple[str, str]],
    ) -> object: ...


class GrpcScoring(_GrpcClient):
    service = SCORING_SERVICE

    def __init__(
        self, channel: grpc.aio.Channel, timeout: float, batch_timeout: float | None = None
    ) -> None:
        super().__init__(channel, timeout)
        self.batch_timeout = batch_timeout or timeout
        self.stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision:
        request = scoring_pb2.ScoreRequest(application=application, view=BASIC)
        response = await self._call("Score", self.stub.Score, request)
        assert isinstance(response, scoring_pb2.ScoreResponse)
        return response.decision

    async def score_batch(
        self, applications: Sequence[LoanApplicationSubmitted]
    ) -> list[scoring_pb2.ScoreResult]:
        request = scoring_pb2.ScoreBatchRequest(applications=applications, view=BASIC)
        response = await self._call("ScoreBatch", self.stub.ScoreBatch, request, self.batch_timeout)
        assert isinstance(response, scoring_pb2.ScoreBatchResponse)
        return list(response.results)

    async def describe_model(self) -> scoring_pb2.ModelDescription:
        request = scoring_pb2.DescribeModelRequest()
        response = await self._call("DescribeModel", self.stub.DescribeModel, request)
        assert isinstance(response, scoring_pb2.ModelDescription)
        return response

    async def ping(self) -> None:
        """The standard gRPC health check of the scoring service."""
        try:
            reply = await self.health.Check(
                health_pb2.HealthCheckRequest(service=SCORING_SERVICE), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(f"health check failed: {exc.code().name}") from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            raise UpstreamUnavailable(f"scoring reports {status}")


class GrpcExplanations(_GrpcClient):
    service = EXPLANATION_SERVICE

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        super().__init__(channel, timeout)
        self.stub = explanation_pb2_grpc.ExplanationServiceStub(channel)

    async def decision(
        self,
        *,
        tenant: str,
        decision_id: str | None = None,
        application_id: str | None = None,
    ) -> CreditDecision:
        if (decision_id is None) == (application_id is None):
            raise ValueError("pass exactly one of decision_id and application_id")
        request = (
            explanation_pb2.GetDecisionRequest(decision_id=decision_id, tenant_id=tenant)
            if decision_id is not None
            else explanation_pb2.GetDecisionRequest(application_id=application_id, tenant_id=tenant)
        )
        response = await self._call("GetDecision", self.stub.GetDecision, request)
        assert isinstance(response, explanation_pb2.GetDecisionResponse)
        return response.decision

    async def reviewed_decision(
        self, decision_id: str, *, tenant: str
    ) -> tuple[CreditDecision, ReviewOutcome | None]:
        request = explanation_pb2.GetDecisionRequest(decision_id=decision_id, tenant_id=tenant)
        response = await self._call("GetDecision", self.stub.GetDecision, request)
        assert isinstance(response, explanation_pb2.GetDecisionResponse)
        return response.decision, response.review if response.HasField("review") else None

    async def outcome_changes(self, decision_id: str, *, tenant: str) -> list[OutcomeChange]:
        request = explanation_pb2.GetExplanationRequest(decision_id=decision_id, tenant_id=tenant)
        response = await self._call("GetOutcomeChanges", self.stub.GetOutcomeChanges, request)
        assert isinstance(response, explanation_pb2.GetOutcomeChangesResponse)
        return [OutcomeChange(c.feature, c.en, c.sw) for c in response.changes]

    async def explanation(self, decision_id: str, *, tenant: str) -> CreditExplanation:
        request = explanation_pb2.GetExplanationRequest(decision_id=decision_id, tenant_id=tenant)
        response = await self._call("GetExplanation", self.stub.GetExplanation, request)
        assert isinstance(response, explanation_pb2.GetExplanationResponse)
        return response.explanation


class KafkaEvents:
    """Publishes envelopes (with the current trace context) and waits for every delivery.

    A publish that the broker has not acknowledged within `publish_timeout` is a 503: the
    records may still arrive later, which the consumers tolerate (the application id and the
    transaction id make a retried record a duplicate, never a second fact)."""

    def __init__(
        self, producer: AIOKafkaProducer, timeout: float, publish_timeout: float | None = None
    ) -> None:
        self.producer = producer
        self.timeout = timeout
        self.publish_timeout = publish_timeout if publish_timeout is not None else timeout

    async def publish(self, topic: str, envelopes: Sequence[EventEnvelope]) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout):
                deliveries = [await publish(self.producer, topic, e) for e in envelopes]
                await asyncio.gather(*deliveries)
        except (KafkaError, TimeoutError) as exc:
            log.warning("kafka publish failed", extra={"topic": topic, "error": repr(exc)})
            raise UpstreamUnavailable("the event log is unavailable; retry later") from exc

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), self.timeout)
        except (KafkaError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"kafka unreachable: {exc!r}") from exc

    async def close(self) -> None:
        await self.producer.stop()


#: Redis's own socket timeout (services.common.redis_store) is longer than a request's budget.
DEFAULT_REDIS_TIMEOUT = 0.5


class RedisReplayStore:
    """Remembers webhook deliveries with SET NX and a TTL (the freshness window)."""

    def __init__(self, redis: Redis, timeout: float = DEFAULT_REDIS_TIMEOUT) -> None:
        self.redis = redis
        self.timeout = timeout

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.redis.set(key, b"1", nx=True, ex=max(ttl_seconds, 1)))
        except (RedisError, TimeoutError) as exc:
            raise UpstreamUnavailable("the replay store is unavailable; retry later") from exc

    async def release(self, key: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.delete(key)
        except (RedisError, TimeoutError):
            log.warning("could not release a webhook replay slot", extra={"key": key})

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.ping()  # type: ignore[misc]
        except (RedisError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"redis unreachable: {exc!r}") from exc

    async def close(self) -> None:
        await self.redis.aclose()


class Revocations(Protocol):
    async def revoked(self, token_id: str) -> bool: ...

    async def revoke(self, token_id: str, until: datetime) -> None: ...


class RedisRevocations:
    """Revoked token ids (`jti`), each kept until the token would have expired anyway."""

    prefix = "alama:gateway:revoked:"

    def __init__(self, redis: Redis, timeout: float = DEFAULT_REDIS_TIMEOUT) -> None:
        self.redis = redis
        self.timeout = timeout

    async def revoked(self, token_id: str) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.redis.exists(self.prefix + token_id))
        except (RedisError, TimeoutError) as exc:  # unknown is not "not revoked": refuse
            raise UpstreamUnavailable("the revocation list is unavailable; retry later") from exc

    async def revoke(self, token_id: str, until: datetime) -> None:
        seconds = max(1, int((until - datetime.now(UTC)).total_seconds()) + 60)
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.set(self.prefix + token_id, b"1", ex=seconds)
        except (RedisError, TimeoutError) as exc:
            raise UpstreamUnavailable("the revocation list is unavailable; retry later") from exc


class ErasureStatuses(Protocol):
    """Members' erasure requests and each store's completion, per tenant."""

    async def requested(self, tenant: str, request_id: str, member_ref: str, at: str) -> None: ...

    async def completed(self, tenant: str, request_id: str, store: str, status: str) -> None: ...

    async def status(self, tenant: str, request_id: str) -> dict[str, str] | None: ...


class RedisErasureStatuses:
    """One Redis hash per request, keyed by tenant and request id (another tenant's id finds
    nothing): ``requested_at``, ``member_ref`` and one field per store that completed (a JSON
    text, the first completion kept: a redelivered request's repeat counts 0)."""

    prefix = "alama:gateway:erasure:"

    def __init__(
        self,
        redis: Redis,
        ttl_seconds: int,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
        prefix: str | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        if prefix is not None:  # exports keep their parts the same way, under their own prefix
            self.prefix = prefix

    def _key(self, tenant: str, request_id: str) -> str:
        return f"{self.prefix}{tenant}:{request_id}"

    async def requested(self, tenant: str, request_id: str, member_ref: str, at: str) -> None:
        key = self._key(tenant, request_id)
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.hset(key, mapping={"requested_at": at, "member_ref": member_ref})  # type: ignore[misc]
                await self.redis.expire(key, self.ttl_seconds)
        except (RedisError, TimeoutError) as exc:
            raise UpstreamUnavailable("the erasure status store is unavailable") from exc

    async def completed(self, tenant: str, request_id: str, store: str, status: str) -> None:
        key = self._key(tenant, request_id)
        async with asyncio.timeout(self.timeout):  # the consumer retries outages
            await self.redis.hsetnx(key, f"store:{store}", status)  # type: ignore[misc]
            await self.redis.expire(key, self.ttl_seconds)

    async def status(self, tenant: str, request_id: str) -> dict[str, str] | None:
        try:
            async with asyncio.timeout(self.timeout):
                found = await self.redis.hgetall(self._key(tenant, request_id))  # type: ignore[misc]
        except (RedisError, TimeoutError) as exc:
            raise UpstreamUnavailable("the erasure status store is unavailable") from exc
        if not found:
            return None
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in found.items()
        }


@dataclass
class Backends:
    scoring: Scoring
    explanations: Explanations
    events: Events
    replay: ReplayStore
    #: None only where a test has no Redis: then no token can have been revoked
    revocations: Revocations | None = None
    #: None only where a test does not limit rates
    limiter: RateLimiter | None = None
    #: members' export and erasure (member_rights.wiring), given by whoever hosts the app with
    #: every member store: a gateway image holds none of them, so there it is None (503)
    members: MemberRightsBackend | None = None
    #: members' erasure requests and their per-store status (the event path of a deployment)
    erasures: ErasureStatuses | None = None
    #: the member pseudonym key (ALAMA_MEMBER_PSEUDONYM_KEY) and where erasure requests go
    members_key: bytes | None = None
    erasures_topic: str = MEMBER_ERASURES
    #: members' export requests and each store's part (kept `export_ttl_hours`: personal data)
    exports: ErasureStatuses | None = None
    exports_topic: str = MEMBER_EXPORTS

    async def close(self) -> None:
        for name in ("scoring", "explanations", "events", "replay", "members"):
            if getattr(self, name) is None:
                continue
            try:
                await getattr(self, name).close()
            except Exception:
                log.exception("closing a backend failed", extra={"backend": name})


async def open_backends(settings: GatewaySettings) -> Backends:
    """Connect everything the gateway needs; the Kafka producer must reach a broker."""
    producer = create_producer(settings.infra, client_id=settings.service_name)
    await producer.start()
    return Backends(
        scoring=GrpcScoring(
            grpc.aio.insecure_channel(settings.scoring_target),
            settings.grpc_timeout_seconds,
            settings.grpc_batch_timeout_seconds,
        ),
        explanations=GrpcExplanations(
            grpc.aio.insecure_channel(settings.explanation_target),
            settings.grpc_timeout_seconds,
        ),
        events=KafkaEvents(
            producer, settings.readiness_timeout_seconds, settings.kafka_publish_timeout_seconds
        ),
        replay=RedisReplayStore(
            redis := create_redis(settings.infra), settings.redis_timeout_seconds
        ),
        revocations=RedisRevocations(redis, settings.redis_timeout_seconds),
        limiter=RateLimiter.on_redis(redis, settings),
        erasures=RedisErasureStatuses(
            redis, settings.erasure_status_ttl_days * 86400, settings.redis_timeout_seconds
        ),
        members_key=settings.member_pseudonym_key.get_secret_value().encode(),
        erasures_topic=settings.erasures_topic,
        exports=RedisErasureStatuses(
            redis,
            settings.export_ttl_hours * 3600,
            settings.redis_timeout_seconds,
            prefix="alama:gateway:export:",
        ),
        exports_topic=settings.exports_topic,
    )
