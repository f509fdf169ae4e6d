"""Run a command and sample the resident memory of its whole process tree (the README's sizes).

`/usr/bin/time -v` reports the largest single process; training's steps run worker processes
beside the main one (snapshots, loan-book parts, online writes), so what the machine must hold
is their sum. Usage: `python -m training.peak_memory [--every 2] [--log FILE] -- COMMAND ...`;
prints the peak sum and when it happened, writes one `HH:MM:SS MiB` line per sample to FILE,
and exits with the command's status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil

MIB = 1024 * 1024


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in `root` and every process below it (gone ones count as nothing)."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.peak_memory")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--log", type=Path, default=None, help="one line per sample")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    started = time.monotonic()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak, peak_at = 0, 0.0
    log = args.log.open("w") if args.log else None
    try:
        while child.poll() is None:
            rss = tree_rss(root)
            if rss > peak:
                peak, peak_at = rss, time.monotonic() - started
            if log is not None:
                log.write(f"{time.strftime('%H:%M:%S')} {rss // MIB}\n")
                log.flush()
            time.sleep(args.every)
    finally:
        if log is not None:
            log.close()
    wall = time.monotonic() - started
    print(
        f"process tree: peak {peak / 1024**3:.2f} GiB resident (summed over its processes, "
        f"every {args.every:g} s) at {peak_at:.0f} s; wall {wall:.0f} s; exit {child.returncode}",
        file=sys.stderr,
    )
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
