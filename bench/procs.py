"""CPU time and memory per process, from /proc: where a request's milliseconds are spent, and
whether any process grows over a long run.

A latency percentile says the path is slow; the CPU each process burns per request says where.
`ProcessMeter.snapshot()` reads utime + stime of every supervised service (replicas included), every
local server (Kafka, Redis, PostgreSQL with all their processes) and the load generator itself;
`per_request(before, after, n)` turns two snapshots into CPU milliseconds per request, so a
regression shows up by service. On a 2-core machine the sum over processes is also the ceiling:
2,000 CPU ms per second of wall time, so 20 CPU ms per request caps throughput near 100/s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def python_speed_s() -> float:
    """Seconds for ten million additions in a Python loop: how fast one core is now. This
    project's machines, and one machine from hour to hour, differ by a third and more, so every
    benchmark records it beside its numbers."""
    began = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - began, 2)


def cpu_seconds(pid: int, *, reaped_children: bool = True) -> float | None:
    """utime + stime of one process, with its reaped children's (a PostgreSQL backend that has
    exited) unless told not to; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # after the command: state is field 3; utime 14, stime 15, cutime 16, cstime 17 (1-based)
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + (cutime + cstime if reaped_children else 0)) / TICKS_PER_S


def rss_bytes(pid: int) -> int | None:
    """Resident set size of one process, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return 0  # a kernel thread or a zombie: no resident memory


def descendants(roots: Iterable[int]) -> set[int]:
    """The roots and every live process below them (uvicorn workers, PostgreSQL backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [r for r in roots if r]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


#: a named group of processes: its root pids, read afresh at each snapshot (a restart moves them)
Group = Callable[[], list[int]]


@dataclass(frozen=True)
class Alone:
    """A group of exactly these processes: not their children, not their reaped children. The
    load generator is one: the services it starts are its children, and they are counted as
    themselves."""

    pids: Group

    def __call__(self) -> list[int]:
        return self.pids()


@dataclass(frozen=True)
class Snapshot:
    seconds: dict[str, float]  # group -> CPU seconds of its processes alive now


class ProcessMeter:
    def __init__(self, groups: Mapping[str, Group]) -> None:
        self.groups = dict(groups)

    def _pids(self, group: Group) -> set[int]:
        return set(group()) if isinstance(group, Alone) else descendants(group())

    def snapshot(self) -> Snapshot:
        seconds = {}
        for name, group in self.groups.items():
            alone = isinstance(group, Alone)
            seconds[name] = sum(
                cpu_seconds(pid, reaped_children=not alone) or 0.0 for pid in self._pids(group)
            )
        return Snapshot(seconds)

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of each group's processes alive now, MiB."""
        return {
            name: round(sum(rss_bytes(pid) or 0 for pid in self._pids(group)) / 2**20, 1)
            for name, group in self.groups.items()
        }

    @staticmethod
    def per_request(before: Snapshot, after: Snapshot, requests: int) -> dict[str, float]:
        """CPU milliseconds per request for each group, and their ``total``."""
        if requests <= 0:
            return {}
        spent = {
            name: max(after.seconds.get(name, 0.0) - before.seconds.get(name, 0.0), 0.0)
            for name in after.seconds
        }
        out = {name: round(s * 1000 / requests, 2) for name, s in spent.items()}
        out["total"] = round(sum(spent.values()) * 1000 / requests, 2)
        return out


def system_meter() -> ProcessMeter:
    """Every supervised service and replica, every local server, and this process."""
    from infra import local, supervisor

    def service(name: str) -> Group:
        def roots() -> list[int]:
            names = [name, *supervisor.running_replicas(name)]
            return [pid for n in names if (pid := supervisor.pid_of(n)) is not None]

        return roots

    def server(srv: local.Server) -> Group:
        return lambda: srv.owned_pids() or ([pid] if (pid := srv.pid()) else [])

    groups: dict[str, Group] = {s.name: service(s.name) for s in supervisor.SERVICES}
    groups |= {srv.name: server(srv) for srv in local.servers()}
    groups["load generator"] = Alone(lambda: [os.getpid()])
    return ProcessMeter(groups)
