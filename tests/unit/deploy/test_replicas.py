"""How many replicas the supervisor starts: a setting for the services that share a group."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.local import autogroups_on, lower_priority, session_priority
from infra.supervisor import (
    BY_NAME,
    FRESHNESS_NICE,
    OFF_PATH_NICE,
    PYTHON,
    SCALABLE,
    SupervisorError,
    replica,
    replicas_wanted,
)
from services.common.settings import service_port


def test_scalable_services_take_their_replica_count_from_the_environment() -> None:
    assert replicas_wanted("scoring", {}) == 1
    assert replicas_wanted("scoring", {"ALAMA_SCORING_REPLICAS": "3"}) == 3
    assert replicas_wanted("audit", {"ALAMA_AUDIT_REPLICAS": "2"}) == 2
    assert replicas_wanted("feature_store", {"ALAMA_FEATURE_STORE_REPLICAS": "2"}) == 2
    assert set(SCALABLE) == {"feature_store", "scoring", "explanation", "audit"}


@pytest.mark.parametrize("raw", ["0", "-1", "two", ""])
def test_a_replica_count_that_is_not_a_positive_whole_number_is_refused(raw: str) -> None:
    with pytest.raises(SupervisorError, match="ALAMA_SCORING_REPLICAS"):
        replicas_wanted("scoring", {"ALAMA_SCORING_REPLICAS": raw})


def test_a_service_that_runs_as_one_process_refuses_replicas() -> None:
    assert replicas_wanted("gateway", {"ALAMA_GATEWAY_REPLICAS": "1"}) == 1
    with pytest.raises(SupervisorError, match="runs as one process"):
        replicas_wanted("console", {"ALAMA_CONSOLE_REPLICAS": "2"})
    # outcomes joins loans to decisions across topics in one process (charts/outcomes too)
    assert replicas_wanted("outcomes", {}) == 1
    with pytest.raises(SupervisorError, match="runs as one process"):
        replicas_wanted("outcomes", {"ALAMA_OUTCOMES_REPLICAS": "2"})


def test_each_replica_has_its_own_ports_in_the_same_group() -> None:
    second, third = replica("scoring", 2), replica("scoring", 3)
    assert second.service == third.service == "scoring"
    assert set(second.env.values()).isdisjoint(third.env.values())
    # a Faust worker's only port is its metrics and liveness port
    worker = replica("feature_store", 2)
    assert worker.service == "feature_store"
    assert set(worker.env) == {"ALAMA_FEATURE_STORE_METRICS_PORT"}
    assert worker.env["ALAMA_FEATURE_STORE_METRICS_PORT"] != str(service_port(9102))


def test_replicas_run_at_their_services_priority() -> None:
    """The synchronous path as the supervisor runs; the rest niced below it, replicas too."""
    for name in ("gateway", "scoring"):
        assert BY_NAME[name].command[:2] == [PYTHON, "-m"]
    assert replica("scoring", 2).command == [PYTHON, "-m", "services.scoring"]
    for name in ("explanation", "audit", "drift", "outcomes", "console", "feature_store"):
        nice = FRESHNESS_NICE if name == "feature_store" else OFF_PATH_NICE
        assert BY_NAME[name].command == [
            "nice",
            "-n",
            str(nice),
            PYTHON,
            "-m",
            f"services.{name}",
        ]
    # the feature store's lag is the features' staleness: it goes ahead of audit and the rest
    assert 0 < FRESHNESS_NICE < OFF_PATH_NICE
    assert replica("audit", 2).command == BY_NAME["audit"].command
    assert replica("feature_store", 2).command == BY_NAME["feature_store"].command


@contextmanager
def _family(script: str, *, new_session: bool = False) -> Iterator[tuple[int, list[int]]]:
    """A "postmaster" (`sh -c script`) and the "backends" it forked, each leading a session of
    its own when the script starts them with `setsid`; killed afterwards."""
    parent = subprocess.Popen(["sh", "-c", script], start_new_session=new_session)
    children: list[int] = []
    try:
        for _ in range(100):
            children = [
                int(stat.parent.name)
                for stat in Path("/proc").glob("[0-9]*/stat")
                if stat.read_text().rpartition(")")[2].split()[1] == str(parent.pid)
            ]
            if children and ("setsid" not in script or all(os.getsid(c) == c for c in children)):
                break
            time.sleep(0.02)
        assert children
        yield parent.pid, children
    finally:
        for pid in children:
            os.kill(pid, 9)
        parent.kill()
        parent.wait()


def test_a_server_off_the_synchronous_path_and_its_children_run_at_the_lower_priority() -> None:
    # a "postmaster" with a "backend" it forked before being reniced
    with _family("sleep 30 & wait") as (parent, children):
        lower_priority(parent)
        own = os.getpriority(os.PRIO_PROCESS, 0)
        for pid in [parent, *children]:
            assert os.getpriority(os.PRIO_PROCESS, pid) == min(own + OFF_PATH_NICE, 19), pid


def test_the_sessions_a_server_and_its_children_lead_are_lowered_too() -> None:
    """PostgreSQL's backends each lead a session; with the kernel's autogroups on, a nice value
    weighs only inside a session, so the sessions are lowered too (and left alone without)."""
    with _family("setsid sleep 30 & wait", new_session=True) as (parent, children):
        assert all(os.getsid(pid) == pid for pid in [parent, *children])
        target = min(os.getpriority(os.PRIO_PROCESS, 0) + OFF_PATH_NICE, 19)
        autogroups = autogroups_on()
        if autogroups:
            assert session_priority(parent) == session_priority(children[0]) == 0
        lower_priority(parent)
        for pid in [parent, *children]:
            assert os.getpriority(os.PRIO_PROCESS, pid) == target, pid
            assert session_priority(pid) == (target if autogroups else None), pid
