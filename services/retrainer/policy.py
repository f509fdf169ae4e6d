"""When a challenger is due: the rule alone, on plain values, so it is tested on its own.

An alert (drift or performance) asks for a run; the schedule asks for one when the last run is
older than its period. Either waits while a run is in progress, within the cool-down after the
last run (an alert storm, a PSI alert per feature at once, trains one challenger), and until
enough outcomes have matured since the last run: a challenger trained on the same rows as the
champion would learn nothing new, so the alerts stay open until there is something to learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.retrainer.store import Trigger


@dataclass(frozen=True)
class Due:
    trigger: str  # drift, performance, schedule
    reason: str
    answers: tuple[str, ...]  # the trigger ids the run answers


@dataclass(frozen=True)
class Waiting:
    reason: str


@dataclass(frozen=True)
class Policy:
    schedule: timedelta | None  # None: alerts only
    cooldown: timedelta
    min_new_outcomes: int


def decide(
    now: datetime,
    policy: Policy,
    *,
    running: bool,
    last_run_at: datetime | None,
    open_triggers: Sequence[Trigger],
    new_outcomes: int,
    watching_since: datetime | None = None,
) -> Due | Waiting:
    """`watching_since`: when the retrainer first started; with no run yet, the schedule's
    period counts from there (a new deployment does not retrain at once)."""
    if running:
        return Waiting("a run is in progress")
    since = last_run_at or watching_since
    scheduled = policy.schedule is not None and (since is None or now - since >= policy.schedule)
    if not open_triggers and not scheduled:
        return Waiting("no alert and the schedule is not due")
    if last_run_at is not None and now - last_run_at < policy.cooldown:
        left = policy.cooldown - (now - last_run_at)
        return Waiting(f"cooling down after the last run ({left.total_seconds():.0f} s left)")
    if new_outcomes < policy.min_new_outcomes:
        return Waiting(
            f"{new_outcomes} outcomes matured since the last run; {policy.min_new_outcomes}"
            " needed to learn anything new"
        )
    if open_triggers:
        first = open_triggers[0]
        kinds = sorted({t.kind for t in open_triggers})
        reason = f"{len(open_triggers)} open alert(s) ({', '.join(kinds)}), first: " + ", ".join(
            f"{k}={v}" for k, v in sorted(first.detail.items())
        )
        return Due(first.kind, reason, tuple(t.trigger_id for t in open_triggers))
    return Due("schedule", "the scheduled period has passed", ())
