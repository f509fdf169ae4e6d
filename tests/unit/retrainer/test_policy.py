"""When a challenger is due: alerts and the schedule ask; a run in progress, the cool-down and
too few matured outcomes make them wait (services/retrainer/policy.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.retrainer.policy import Due, Policy, Waiting, decide
from services.retrainer.store import Trigger

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
POLICY = Policy(schedule=timedelta(days=7), cooldown=timedelta(hours=1), min_new_outcomes=200)


def _alert(n: int, kind: str = "drift", minutes_ago: int = 5) -> Trigger:
    return Trigger(
        f"{kind}:{n}", kind, {"subject": f"f{n}", "psi": 0.3}, NOW - timedelta(minutes=minutes_ago)
    )


def test_alerts_ask_for_one_run_that_answers_them_all() -> None:
    alerts = [_alert(1, minutes_ago=9), _alert(2, "performance", minutes_ago=3), _alert(3)]
    verdict = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=NOW - timedelta(days=2),
        open_triggers=alerts,
        new_outcomes=500,
    )
    assert isinstance(verdict, Due)
    assert verdict.trigger == "drift"  # the first alert's kind
    assert verdict.answers == ("drift:1", "performance:2", "drift:3")
    assert "3 open alert(s) (drift, performance)" in verdict.reason


def test_a_run_in_progress_the_cooldown_and_too_few_outcomes_make_an_alert_wait() -> None:
    alerts = [_alert(1)]
    running = decide(
        NOW, POLICY, running=True, last_run_at=None, open_triggers=alerts, new_outcomes=10**6
    )
    assert isinstance(running, Waiting)
    cooling = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=NOW - timedelta(minutes=20),
        open_triggers=alerts,
        new_outcomes=10**6,
    )
    assert isinstance(cooling, Waiting) and "2400 s left" in cooling.reason
    starved = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=NOW - timedelta(hours=2),
        open_triggers=alerts,
        new_outcomes=199,
    )
    assert isinstance(starved, Waiting) and "199 outcomes" in starved.reason
    ready = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=NOW - timedelta(hours=2),
        open_triggers=alerts,
        new_outcomes=200,
    )
    assert isinstance(ready, Due)


def test_the_schedule_asks_once_its_period_has_passed_and_never_when_off() -> None:
    week = NOW - timedelta(days=7)
    due = decide(NOW, POLICY, running=False, last_run_at=week, open_triggers=[], new_outcomes=300)
    assert isinstance(due, Due) and due.trigger == "schedule" and due.answers == ()
    early = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=week + timedelta(minutes=1),
        open_triggers=[],
        new_outcomes=300,
    )
    assert isinstance(early, Waiting)
    # with no run yet the period counts from the retrainer's first start
    fresh = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=None,
        open_triggers=[],
        new_outcomes=300,
        watching_since=NOW - timedelta(days=1),
    )
    assert isinstance(fresh, Waiting)
    first = decide(
        NOW,
        POLICY,
        running=False,
        last_run_at=None,
        open_triggers=[],
        new_outcomes=300,
        watching_since=week,
    )
    assert isinstance(first, Due)
    off = Policy(schedule=None, cooldown=timedelta(0), min_new_outcomes=1)
    assert isinstance(
        decide(NOW, off, running=False, last_run_at=None, open_triggers=[], new_outcomes=300),
        Waiting,
    )
