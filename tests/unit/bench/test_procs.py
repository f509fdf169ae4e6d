"""CPU per request by process: read from /proc, children included, per request reached."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.procs import Alone, ProcessMeter, Snapshot, cpu_seconds, descendants, rss_bytes


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_process_that_burns_cpu_is_charged_for_it() -> None:
    meter = ProcessMeter({"me": lambda: [os.getpid()], "nobody": lambda: []})
    before = meter.snapshot()
    _burn(0.3)
    cost = meter.per_request(before, meter.snapshot(), requests=10)
    assert 25 <= cost["me"] <= 100  # 300 ms over 10 requests, with slack for the test's own
    assert cost["nobody"] == 0.0
    assert cost["total"] == cost["me"]


def _burning_child() -> subprocess.Popen[bytes]:
    """A child that burns 0.4 s of CPU, then sleeps until killed."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend=time.process_time()+0.4\n"
            "while time.process_time()<end: pass\ntime.sleep(30)",
        ]
    )


def test_a_child_process_is_counted_with_its_parent() -> None:
    child = _burning_child()
    try:
        assert child.pid in descendants([os.getpid()])
        meter = ProcessMeter({"tree": lambda: [os.getpid()]})
        before = meter.snapshot()
        deadline = time.monotonic() + 20
        while (cpu_seconds(child.pid) or 0.0) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        cost = meter.per_request(before, meter.snapshot(), requests=1)
        assert cost["tree"] >= 300  # the child's 400 ms (less what it burnt before `before`)
    finally:
        child.kill()
        child.wait()


def test_a_gone_process_reads_as_none_and_a_restart_never_counts_negative() -> None:
    assert cpu_seconds(2**22 + 12345) is None
    cost = ProcessMeter.per_request(Snapshot({"svc": 5.0}), Snapshot({"svc": 1.0}), requests=4)
    assert cost == {"svc": 0.0, "total": 0.0}
    assert ProcessMeter.per_request(Snapshot({}), Snapshot({"svc": 1.0}), requests=0) == {}


def test_resident_memory_is_read_per_group() -> None:
    meter = ProcessMeter({"me": lambda: [os.getpid()], "nobody": lambda: []})
    ballast = bytearray(64 * 2**20)  # touched: resident
    ballast[::4096] = b"x" * len(ballast[::4096])
    memory = meter.memory_mib()
    assert memory["me"] >= 64 and memory["nobody"] == 0.0
    assert rss_bytes(2**22 + 12345) is None
    del ballast


def test_a_process_counted_alone_is_not_charged_for_its_children() -> None:
    child = _burning_child()
    try:
        meter = ProcessMeter({"me": Alone(lambda: [os.getpid()]), "tree": lambda: [os.getpid()]})
        before = meter.snapshot()
        deadline = time.monotonic() + 20
        while (cpu_seconds(child.pid) or 0.0) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        cost = meter.per_request(before, meter.snapshot(), requests=1)
        assert cost["tree"] >= 300 and cost["me"] < 100
    finally:
        child.kill()
        child.wait()
