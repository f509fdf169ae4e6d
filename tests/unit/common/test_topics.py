from services.common.topics import (
    DAY_MS,
    DEAD_LETTER_SUFFIX,
    TOPICS,
    CleanupPolicy,
    TopicSpec,
    all_topics,
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
