from services.common.topics import (
    CREATE,
    CREDIT_DECISIONS,
    DAY_MS,
    DEAD_LETTER_SUFFIX,
    DESCRIBE,
    DRIFT_ALERTS,
    GROUP,
    LOAN_APPLICATIONS,
    LOANS,
    MODEL_PERFORMANCE_ALERTS,
    MODEL_REGISTRY,
    PREFIXED,
    READ,
    REPAYMENTS,
    SERVICE_ACCESS,
    SHADOW_DECISIONS,
    TOPIC,
    TOPICS,
    WRITE,
    AclGrant,
    CleanupPolicy,
    TopicSpec,
    acl_bindings,
    all_topics,
    dead_letter_topic,
)

REQUIRED = {
    "loan.applications",
    "core.repayments",
    "mobile_money.transactions",
    "credit.decisions",
    "credit.explanations",
    "credit.review_outcomes",
    "drift.alerts",
}


def test_every_required_topic_is_declared_once() -> None:
    names = [t.name for t in all_topics()]
    assert len(names) == len(set(names))
    assert REQUIRED <= set(names)


def test_every_consumed_topic_has_a_dead_letter_twin() -> None:
    names = {t.name for t in all_topics()}
    for topic in TOPICS:
        if topic.consumed:
            assert topic.name + DEAD_LETTER_SUFFIX in names
    assert not any(t.name.endswith(DEAD_LETTER_SUFFIX) for t in TOPICS)


def test_topic_config_carries_retention_and_cleanup_policy() -> None:
    spec = TopicSpec("x", 2, 3, CleanupPolicy.COMPACT)
    assert spec.config == {"retention.ms": str(3 * DAY_MS), "cleanup.policy": "compact"}
    assert spec.dead_letter.retention_days >= 30
    assert not spec.dead_letter.consumed


def test_the_access_table_names_declared_topics_and_the_services_groups() -> None:
    from services.audit.settings import AuditSettings
    from services.console.settings import ConsoleSettings
    from services.drift.settings import DriftSettings
    from services.explanation.settings import ExplanationSettings
    from services.feature_store.settings import FeatureStoreSettings
    from services.gateway.settings import GatewaySettings
    from services.outcomes.settings import OutcomesSettings
    from services.retrainer.settings import RetrainerSettings
    from services.scoring.settings import ScoringSettings

    declared = {t.name for t in all_topics()}
    for access in SERVICE_ACCESS:
        assert {*access.consumes, *access.produces, *access.reads} <= declared, access.chart
        assert all(dead_letter_topic(t) in declared for t in access.consumes)
    groups = {a.chart: a.group for a in SERVICE_ACCESS}
    prefixes = {a.chart: a.internal_prefix for a in SERVICE_ACCESS}
    assert groups == {
        "gateway": GatewaySettings.model_fields["erasure_status_group"].default,
        "scoring": ScoringSettings.model_fields["consumer_group"].default,
        "explanation": ExplanationSettings.model_fields["consumer_group"].default,
        "feature-store": FeatureStoreSettings.model_fields["consumer_group"].default,
        "audit": AuditSettings.model_fields["consumer_group"].default,
        "drift": DriftSettings.model_fields["consumer_group"].default,
        "console": ConsoleSettings.model_fields["consumer_group"].default,
        "outcomes": OutcomesSettings.model_fields["consumer_group"].default,
        "retrainer": RetrainerSettings.model_fields["consumer_group"].default,
    }
    # a Faust app's internal topics are named <app id>-...
    assert prefixes["feature-store"] == f"{groups['feature-store']}-"
    assert prefixes["drift"] == f"{groups['drift']}-"


def test_every_consumed_topic_has_a_consumer_and_every_topic_a_producer_or_reader() -> None:
    consumed = {t for a in SERVICE_ACCESS for t in a.consumes}
    produced = {t for a in SERVICE_ACCESS for t in a.produces}
    # drift and performance alerts go to the retrainer, whose training job writes the registry's
    # changes (as does the training CLI run by hand); repayments and loans come from the SACCO's
    # core banking system
    assert {t.name for t in TOPICS if t.consumed} <= consumed
    assert {DRIFT_ALERTS, MODEL_PERFORMANCE_ALERTS} <= consumed
    assert MODEL_REGISTRY in produced
    assert {t.name for t in TOPICS} - produced == {REPAYMENTS, LOANS}


def test_acls_grant_exactly_what_a_service_uses() -> None:
    scoring = next(a for a in SERVICE_ACCESS if a.chart == "scoring")
    assert acl_bindings(scoring) == sorted(
        [
            AclGrant(TOPIC, LOAN_APPLICATIONS, READ),
            AclGrant(TOPIC, LOAN_APPLICATIONS, DESCRIBE),
            AclGrant(TOPIC, LOAN_APPLICATIONS, WRITE),  # what it decided synchronously
            AclGrant(TOPIC, CREDIT_DECISIONS, WRITE),
            AclGrant(TOPIC, CREDIT_DECISIONS, DESCRIBE),
            AclGrant(TOPIC, SHADOW_DECISIONS, WRITE),  # the challenger's, in shadow
            AclGrant(TOPIC, SHADOW_DECISIONS, DESCRIBE),
            AclGrant(TOPIC, MODEL_REGISTRY, READ),  # by assignment: every replica reloads
            AclGrant(TOPIC, MODEL_REGISTRY, DESCRIBE),
            AclGrant(TOPIC, dead_letter_topic(LOAN_APPLICATIONS), WRITE),
            AclGrant(TOPIC, dead_letter_topic(LOAN_APPLICATIONS), DESCRIBE),
            AclGrant(GROUP, "scoring", READ),
            AclGrant(GROUP, "scoring", DESCRIBE),
        ]
    )
    gateway = next(a for a in SERVICE_ACCESS if a.chart == "gateway")
    # the gateway reads only erasure completions and export parts (what it reports), in its
    # own group; it alone reads the parts, which hold members' personal data
    reads = {(g.resource, g.name) for g in acl_bindings(gateway) if g.operation == READ}
    assert reads == {
        (TOPIC, "member.erasures.completed"),
        (TOPIC, "member.exports.parts"),
        (GROUP, "gateway-erasures"),
    }
    part_readers = {
        a.chart
        for a in SERVICE_ACCESS
        if AclGrant(TOPIC, "member.exports.parts", READ) in acl_bindings(a)
    }
    assert part_readers == {"gateway"}
    drift = next(a for a in SERVICE_ACCESS if a.chart == "drift")
    assert AclGrant(TOPIC, "alama-drift-", CREATE, PREFIXED) in acl_bindings(drift)
