"""What the running system spends doing nothing: CPU milliseconds per second by process.

    python -m bench.idle [--settle 45] [--seconds 60]

Starts the system as `make bench` does (servers, the promoted model, every service), waits
`--settle` seconds for start-up work to end, then measures each process's CPU over `--seconds`
with nothing sent (`bench.procs`). Written to bench/results/idle.json. Idle cost is a floor
every request pays its share of: at 100 requests/s, 280 CPU ms a second is 2.8 ms a request.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"


@app.command()
def main(
    settle: Annotated[float, typer.Option(min=0, help="seconds to wait after start-up")] = 45,
    seconds: Annotated[float, typer.Option(min=1, help="seconds to measure")] = 60,
) -> None:
    from bench.__main__ import start_system
    from bench.procs import system_meter

    manifest = start_system()
    time.sleep(settle)
    meter = system_meter()
    before = meter.snapshot()
    time.sleep(seconds)
    after = meter.snapshot()
    per_second = {
        name: round(
            (after.seconds.get(name, 0.0) - before.seconds.get(name, 0.0)) * 1000 / seconds, 1
        )
        for name in after.seconds
    }
    per_second["total"] = round(sum(per_second.values()), 1)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": manifest.get("version"),
        "seconds": seconds,
        "cpu_ms_per_second": per_second,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "idle.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(result)


if __name__ == "__main__":
    app()
