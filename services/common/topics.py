"""The one declarative list of Kafka topics, and the code that makes the broker match it.

Every topic a service consumes has a dead-letter twin (``<name>.dlq``) that keeps the records
it could not process together with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

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

    @property
    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_days * DAY_MS),
            "cleanup.policy": str(self.cleanup_policy),
        }

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
MOBILE_MONEY_TRANSACTIONS = "mobile_money.transactions"
CREDIT_DECISIONS = "credit.decisions"
CREDIT_EXPLANATIONS = "credit.explanations"
REVIEW_OUTCOMES = "credit.review_outcomes"
DRIFT_ALERTS = "drift.alerts"
AUDIT_ANCHORS = "audit.anchors"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(LOAN_APPLICATIONS, 6, 7, description="LoanApplicationSubmitted from core banking"),
    TopicSpec(REPAYMENTS, 6, 30, description="RepaymentRecorded from core banking"),
    TopicSpec(MOBILE_MONEY_TRANSACTIONS, 6, 7, description="MobileMoneyTransaction webhooks"),
    TopicSpec(CREDIT_DECISIONS, 6, 30, description="CreditDecision from scoring"),
    TopicSpec(CREDIT_EXPLANATIONS, 6, 30, description="CreditExplanation from explanation"),
    TopicSpec(REVIEW_OUTCOMES, 3, 365, description="ReviewOutcome from risk officers"),
    TopicSpec(DRIFT_ALERTS, 1, 90, description="DriftAlert from drift; may trigger retraining"),
    TopicSpec(
        AUDIT_ANCHORS,
        1,
        3650,
        cleanup_policy=CleanupPolicy.COMPACT,
        consumed=False,
        description="the audit chain's sealed head per chain (keyed by schema), outside PostgreSQL",
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
    bootstrap: str, topics: Iterable[TopicSpec] | None = None, *, timeout_ms: int = 30_000
) -> list[TopicChange]:
    """Create missing topics, grow partition counts and fix configs; existing data is kept."""
    wanted = all_topics(TOPICS if topics is None else topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
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
                    [NewTopic(t.name, t.partitions, 1, topic_configs=t.config) for t in missing],
                    timeout_ms=timeout_ms,
                )
            except TopicAlreadyExistsError:
                pass  # a concurrent creator won; the checks below still hold
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
            changes += await _align_configs(admin, present)
    finally:
        await admin.close()
    return changes


async def _align_configs(admin: AIOKafkaAdminClient, topics: list[TopicSpec]) -> list[TopicChange]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in topics]
    responses = await admin.describe_configs(resources)
    actual: dict[str, dict[str, str]] = {}
    for response in responses:
        for _err, _msg, _rtype, name, entries in response.resources:
            actual[name] = {entry[0]: entry[1] for entry in entries}
    stale = [
        t for t in topics if any(actual.get(t.name, {}).get(k) != v for k, v in t.config.items())
    ]
    if not stale:
        return []
    await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t.name, configs=t.config) for t in stale]
    )
    return [TopicChange(t.name, "config") for t in stale]
