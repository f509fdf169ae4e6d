"""The one declarative list of Kafka topics, who may use each, and the code that makes the
broker match it.

Every topic a service consumes has a dead-letter twin (``<name>.dlq``) that keeps the records
it could not process together with the reason. `SERVICE_ACCESS` says which service produces and
consumes what, under which consumer group; `acl_bindings` turns it into the Kafka ACLs the
deployment grants each service's principal (the Helm chart's ACL job is checked against it).
Topics are created with the replication factor and ``min.insync.replicas`` of `InfraSettings`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from services.common.kafka_security import client_options
from services.common.settings import InfraSettings

DAY_MS = 24 * 60 * 60 * 1000
DEAD_LETTER_SUFFIX = ".dlq"


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_days: int
    cleanup_policy: CleanupPolicy = CleanupPolicy.DELETE
    consumed: bool = True
    description: str = ""
    #: further topic configs, as (name, value) pairs
    extra_config: tuple[tuple[str, str], ...] = ()

    @property
    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_days * DAY_MS),
            "cleanup.policy": str(self.cleanup_policy),
        } | dict(self.extra_config)

    @property
    def dead_letter(self) -> TopicSpec:
        return TopicSpec(
            name=dead_letter_topic(self.name),
            partitions=1,
            retention_days=max(self.retention_days, 30),
            consumed=False,
            description=f"records from {self.name} that a consumer could not process",
        )


def dead_letter_topic(name: str) -> str:
    return name + DEAD_LETTER_SUFFIX


LOAN_APPLICATIONS = "loan.applications"
REPAYMENTS = "core.repayments"
LOANS = "core.loans"
LOAN_OUTCOMES = "credit.loan_outcomes"
MOBILE_MONEY_TRANSACTIONS = "mobile_money.transactions"
CREDIT_DECISIONS = "credit.decisions"
CREDIT_EXPLANATIONS = "credit.explanations"
REVIEW_OUTCOMES = "credit.review_outcomes"
APPEALS = "credit.appeals"
DRIFT_ALERTS = "drift.alerts"
MODEL_REGISTRY = "model.registry"
MODEL_PERFORMANCE_ALERTS = "model.performance_alerts"
SHADOW_DECISIONS = "credit.decisions.shadow"
AUDIT_ANCHORS = "audit.anchors"
MEMBER_ERASURES = "member.erasures"
MEMBER_ERASURES_VOUCHED = "member.erasures.vouched"
MEMBER_ERASURES_COMPLETED = "member.erasures.completed"
MEMBER_EXPORTS = "member.exports"
MEMBER_EXPORT_PARTS = "member.exports.parts"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(LOAN_APPLICATIONS, 6, 7, description="LoanApplicationSubmitted from core banking"),
    TopicSpec(REPAYMENTS, 6, 30, description="RepaymentRecorded from core banking"),
    TopicSpec(LOANS, 6, 365, description="LoanDisbursed from core banking"),
    TopicSpec(
        LOAN_OUTCOMES,
        3,
        3650,
        description="LoanOutcome from outcomes: how each loan Alama decided turned out",
    ),
    TopicSpec(MOBILE_MONEY_TRANSACTIONS, 6, 7, description="MobileMoneyTransaction webhooks"),
    TopicSpec(CREDIT_DECISIONS, 6, 30, description="CreditDecision from scoring"),
    TopicSpec(CREDIT_EXPLANATIONS, 6, 30, description="CreditExplanation from explanation"),
    TopicSpec(REVIEW_OUTCOMES, 3, 365, description="ReviewOutcome from risk officers"),
    TopicSpec(APPEALS, 3, 365, description="AppealLodged from partners (API) and officers"),
    TopicSpec(DRIFT_ALERTS, 1, 90, description="DriftAlert from drift; may trigger retraining"),
    TopicSpec(
        MODEL_PERFORMANCE_ALERTS,
        1,
        90,
        description="ModelPerformanceAlert from outcomes; may trigger retraining",
    ),
    TopicSpec(
        MODEL_REGISTRY,
        1,  # one partition: the registry's changes in the order they happened
        3650,
        description="ModelRegistryChanged: challengers, promotions, refusals and rollbacks",
    ),
    TopicSpec(
        SHADOW_DECISIONS,
        6,
        30,
        description="CreditDecision from the challenger in shadow; nothing acts on it",
    ),
    TopicSpec(
        AUDIT_ANCHORS,
        1,
        3650,
        cleanup_policy=CleanupPolicy.COMPACT,
        consumed=False,
        description="the audit chain's sealed head per chain (keyed by schema), outside PostgreSQL",
    ),
    TopicSpec(MEMBER_ERASURES, 3, 7, description="MemberErasureRequested from the admin API"),
    TopicSpec(
        MEMBER_ERASURES_VOUCHED,
        6,  # co-partitioned with the feature store's source topics (keyed by member id)
        7,
        description="MemberErasureRequested the audit vouched for, for stores without tenants",
    ),
    TopicSpec(
        MEMBER_ERASURES_COMPLETED,
        3,
        30,
        description="MemberErasureCompleted from each store that holds members' data",
    ),
    TopicSpec(
        MEMBER_EXPORTS,
        6,  # co-partitioned with the feature store's source topics (keyed by member key)
        1,
        description="MemberExportRequested from the admin API",
    ),
    TopicSpec(
        MEMBER_EXPORT_PARTS,
        3,
        1,  # a member's personal data: kept one day, read by the gateway alone
        description="MemberExportPart from each store that holds members' data",
    ),
)


def all_topics(topics: Iterable[TopicSpec] = TOPICS) -> list[TopicSpec]:
    """The declared topics followed by the dead-letter twin of every consumed one."""
    declared = list(topics)
    return declared + [t.dead_letter for t in declared if t.consumed]


@dataclass(frozen=True)
class TopicChange:
    topic: str
    action: str  # "created", "partitions", "config"


async def ensure_topics(
    infra: InfraSettings | str,
    topics: Iterable[TopicSpec] | None = None,
    *,
    timeout_ms: int = 30_000,
) -> list[TopicChange]:
    """Create missing topics, grow partition counts and fix configs; existing data is kept.

    New topics get `infra`'s replication factor and ``min.insync.replicas``. A bare bootstrap
    address takes the rest (security, replication) from the environment's `InfraSettings`.
    """
    if isinstance(infra, str):
        infra = InfraSettings(kafka_bootstrap=infra)
    wanted = all_topics(TOPICS if topics is None else topics)
    admin = AIOKafkaAdminClient(**client_options(infra), request_timeout_ms=timeout_ms)
    await admin.start()
    changes: list[TopicChange] = []
    try:
        existing = await admin.describe_topics([t.name for t in wanted])
        partitions_now = {
            d["topic"]: len(d["partitions"]) for d in existing if d.get("error_code", 0) == 0
        }
        missing = [t for t in wanted if t.name not in partitions_now]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            t.name,
                            t.partitions,
                            infra.kafka_replication_factor,
                            topic_configs=_wanted_config(t, infra),
                        )
                        for t in missing
                    ],
                    timeout_ms=timeout_ms,
                )
            except TopicAlreadyExistsError:
                # a concurrent creator won, or the describe above ran before the broker's
                # metadata showed a topic just created: nothing to report as created here
                pass
            else:
                changes += [TopicChange(t.name, "created") for t in missing]
        grow = {
            t.name: NewPartitions(t.partitions)
            for t in wanted
            if t.name in partitions_now and partitions_now[t.name] < t.partitions
        }
        if grow:
            await admin.create_partitions(grow, timeout_ms=timeout_ms)
            changes += [TopicChange(name, "partitions") for name in grow]
        present = [t for t in wanted if t.name in partitions_now]
        if present:
            changes += await _align_configs(admin, present, infra)
    finally:
        await admin.close()
    return changes


def _wanted_config(topic: TopicSpec, infra: InfraSettings) -> dict[str, str]:
    return topic.config | {"min.insync.replicas": str(infra.kafka_min_insync_replicas)}


async def _align_configs(
    admin: AIOKafkaAdminClient, topics: list[TopicSpec], infra: InfraSettings
) -> list[TopicChange]:
    """Alter (which replaces a topic's whole set of overrides) only topics that differ."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in topics]
    responses = await admin.describe_configs(resources)
    actual: dict[str, dict[str, str]] = {}
    for response in responses:
        for _err, _msg, _rtype, name, entries in response.resources:
            actual[name] = {entry[0]: entry[1] for entry in entries}
    wanted = {t.name: _wanted_config(t, infra) for t in topics}
    stale = [
        t
        for t in topics
        if any(actual.get(t.name, {}).get(k) != v for k, v in wanted[t.name].items())
    ]
    if not stale:
        return []
    await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t.name, configs=wanted[t.name]) for t in stale]
    )
    return [TopicChange(t.name, "config") for t in stale]


#: Kafka ACL operations (``kafka-acls --operation``) and resource kinds as the ACL tool names them
READ, WRITE, DESCRIBE, CREATE = "Read", "Write", "Describe", "Create"
TOPIC, GROUP = "topic", "group"
LITERAL, PREFIXED = "literal", "prefixed"


@dataclass(frozen=True, order=True)
class AclGrant:
    """One ALLOW ACL for a service's principal: an operation on a topic or group."""

    resource: str  # TOPIC or GROUP
    name: str
    operation: str
    pattern: str = LITERAL  # PREFIXED: every topic whose name starts with `name`


@dataclass(frozen=True)
class ServiceAccess:
    """What one deployed service does on Kafka (its chart is `chart`)."""

    chart: str
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    group: str | None = None
    #: topics read by assignment, outside any group (the audit anchors it verifies)
    reads: tuple[str, ...] = ()
    #: a Faust app's id: its changelog, repartition and leader topics start with ``<id>-``
    internal_prefix: str | None = None


#: Who produces and consumes each topic. The group names are the services' default
#: ``consumer_group`` settings (a unit test holds them together).
SERVICE_ACCESS: tuple[ServiceAccess, ...] = (
    ServiceAccess(
        "gateway",
        consumes=(MEMBER_ERASURES_COMPLETED, MEMBER_EXPORT_PARTS),
        produces=(
            LOAN_APPLICATIONS,
            MOBILE_MONEY_TRANSACTIONS,
            APPEALS,
            MEMBER_ERASURES,
            MEMBER_EXPORTS,
        ),
        group="gateway-erasures",
    ),
    ServiceAccess(
        "scoring",
        consumes=(LOAN_APPLICATIONS,),
        # loan.applications: the applications it decided synchronously, recorded after
        produces=(CREDIT_DECISIONS, SHADOW_DECISIONS, LOAN_APPLICATIONS),
        # every replica reads the registry's changes to reload at once (it polls as well)
        reads=(MODEL_REGISTRY,),
        group="scoring",
    ),
    ServiceAccess(
        "explanation",
        consumes=(CREDIT_DECISIONS, REVIEW_OUTCOMES, MEMBER_ERASURES, MEMBER_EXPORTS),
        produces=(CREDIT_EXPLANATIONS, MEMBER_ERASURES_COMPLETED, MEMBER_EXPORT_PARTS),
        group="explanation",
    ),
    ServiceAccess(
        "feature-store",
        consumes=(MOBILE_MONEY_TRANSACTIONS, REPAYMENTS, MEMBER_ERASURES_VOUCHED, MEMBER_EXPORTS),
        produces=(MEMBER_ERASURES_COMPLETED, MEMBER_EXPORT_PARTS),
        group="feature_store",
        internal_prefix="feature_store-",
    ),
    ServiceAccess(
        "audit",
        consumes=(
            LOAN_APPLICATIONS,
            CREDIT_DECISIONS,
            CREDIT_EXPLANATIONS,
            REVIEW_OUTCOMES,
            APPEALS,
            MEMBER_ERASURES,
            MEMBER_ERASURES_COMPLETED,
            MEMBER_EXPORTS,
            MODEL_REGISTRY,
        ),
        produces=(
            AUDIT_ANCHORS,
            MEMBER_ERASURES_VOUCHED,
            MEMBER_ERASURES_COMPLETED,
            MEMBER_EXPORT_PARTS,
        ),
        reads=(AUDIT_ANCHORS,),
        group="audit",
    ),
    ServiceAccess(
        "outcomes",
        # loan.applications only for each application's gender and age band (shadow fairness)
        consumes=(
            CREDIT_DECISIONS,
            REVIEW_OUTCOMES,
            LOANS,
            REPAYMENTS,
            SHADOW_DECISIONS,
            LOAN_APPLICATIONS,
            MEMBER_ERASURES,
            MEMBER_EXPORTS,
        ),
        produces=(
            LOAN_OUTCOMES,
            MODEL_PERFORMANCE_ALERTS,
            MEMBER_ERASURES_COMPLETED,
            MEMBER_EXPORT_PARTS,
        ),
        group="outcomes",
    ),
    ServiceAccess(
        "console",
        consumes=(
            LOAN_APPLICATIONS,
            CREDIT_DECISIONS,
            APPEALS,
            LOAN_OUTCOMES,
            MEMBER_ERASURES,
            MEMBER_EXPORTS,
        ),
        produces=(REVIEW_OUTCOMES, APPEALS, MEMBER_ERASURES_COMPLETED, MEMBER_EXPORT_PARTS),
        group="console",
    ),
    ServiceAccess(
        "drift",
        consumes=(CREDIT_DECISIONS,),
        produces=(DRIFT_ALERTS,),
        group="alama-drift",
        internal_prefix="alama-drift-",
    ),
    ServiceAccess(
        "retrainer",
        # what a challenger learns from, the alerts that ask for one, and members' rights
        consumes=(
            LOAN_APPLICATIONS,
            LOAN_OUTCOMES,
            DRIFT_ALERTS,
            MODEL_PERFORMANCE_ALERTS,
            MEMBER_ERASURES,
            MEMBER_EXPORTS,
        ),
        # the challenger it registers (its training job publishes as the retrainer's principal)
        produces=(MODEL_REGISTRY, MEMBER_ERASURES_COMPLETED, MEMBER_EXPORT_PARTS),
        group="retrainer",
    ),
)


def acl_bindings(access: ServiceAccess) -> list[AclGrant]:
    """Exactly what `access` needs: Read on what it consumes or reads, Write on what it produces
    and on the dead-letter twin of each consumed topic, Describe on all of them (metadata, lag),
    Read and Describe on its group, and everything on a Faust app's own topics."""
    return sorted(set(_grants(access)))


def _grants(access: ServiceAccess) -> Iterator[AclGrant]:
    for topic in (*access.consumes, *access.reads):
        yield AclGrant(TOPIC, topic, READ)
        yield AclGrant(TOPIC, topic, DESCRIBE)
    for topic in (*access.produces, *map(dead_letter_topic, access.consumes)):
        yield AclGrant(TOPIC, topic, WRITE)
        yield AclGrant(TOPIC, topic, DESCRIBE)
    if access.group is not None:
        yield AclGrant(GROUP, access.group, READ)
        yield AclGrant(GROUP, access.group, DESCRIBE)
    if access.internal_prefix is not None:
        for operation in (READ, WRITE, DESCRIBE, CREATE):
            yield AclGrant(TOPIC, access.internal_prefix, operation, PREFIXED)
