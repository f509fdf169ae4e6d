"""`make bench-import`: import a loan book with millions of mobile-money rows and measure it.

    python -m bench.import_scale [--mobile-money-rows 10000000] [--members 3000]

Writes a contract export (the synthetic world's tables; its mobile-money statements repeated
with fresh transaction ids and shifted days until the row count is reached), then runs
`python -m training import --source csv` on it in a child process and records the wall time,
rows per second and the child's peak resident memory in bench/results/import.json and .md.
A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console

from training.importer import write_csv
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def write_export(folder: Path, members: int, mobile_money_rows: int) -> dict[str, int]:
    """The contract CSVs, with the mobile-money file grown to `mobile_money_rows` in batches."""
    book = loan_book_from_world(generate_world(members, seed=3))
    mobile = book.tables.pop("mobile_money")
    rows = write_csv(book, folder)
    base = pd.DataFrame(
        {
            "member_id": mobile["member_id"].astype(str),
            "occurred_at": mobile["occurred_at"],
            "kind": mobile["kind"].astype(str),
            "amount_kes": mobile["amount_kes"].astype(np.float64),
            "balance_kes": mobile["balance_kes"].astype(np.float64),
        }
    )
    written, copy = 0, 0
    with pacsv.CSVWriter(
        folder / "mobile_money.csv",
        pa.schema(
            [
                ("transaction_id", pa.string()),
                ("member_id", pa.string()),
                ("occurred_at", pa.string()),
                ("kind", pa.string()),
                ("amount_kes", pa.float64()),
                ("balance_kes", pa.float64()),
            ]
        ),
    ) as writer:
        while written < mobile_money_rows:
            part = base.iloc[: mobile_money_rows - written]
            # each copy moves a few minutes earlier, so no copy leaves the data's time range
            shifted = part["occurred_at"] - pd.Timedelta(minutes=copy)
            table = pa.table(
                {
                    "transaction_id": [f"T{copy:04d}-{i}" for i in range(len(part))],
                    "member_id": part["member_id"].to_numpy(),
                    "occurred_at": shifted.map(pd.Timestamp.isoformat).to_numpy(),
                    "kind": part["kind"].to_numpy(),
                    "amount_kes": part["amount_kes"].to_numpy(),
                    "balance_kes": part["balance_kes"].to_numpy(),
                }
            )
            writer.write_table(table)
            written += len(part)
            copy += 1
    rows["mobile_money"] = written
    return rows


@app.command()
def main(
    mobile_money_rows: Annotated[int, typer.Option(help="rows to import")] = 10_000_000,
    members: Annotated[int, typer.Option(help="members in the world behind the export")] = 3000,
    keep: Annotated[bool, typer.Option(help="keep the export and the loan book")] = False,
) -> None:
    work = ROOT / ".run" / "bench-import"
    shutil.rmtree(work, ignore_errors=True)
    export = work / "export"
    export.mkdir(parents=True)
    started = time.perf_counter()
    rows = write_export(export, members, mobile_money_rows)
    size = sum(p.stat().st_size for p in export.iterdir())
    console.print(
        f"wrote {sum(rows.values()):,} rows ({size / 2**20:,.0f} MiB) in "
        f"{time.perf_counter() - started:.0f}s; importing"
    )
    clock = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "import",
            "--source",
            "csv",
            str(export),
            "--destination",
            str(work / "book"),
        ],
        cwd=ROOT,
        env=os.environ | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - clock
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if result.returncode != 0:
        console.print(result.stdout[-4000:], result.stderr[-4000:])
        raise typer.Exit(1)
    total = sum(rows.values())
    record = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "rows": rows,
        "csv_mib": round(size / 2**20, 1),
        "import_seconds": round(seconds, 1),
        "rows_per_second": round(total / seconds),
        "peak_memory_mb": round(peak_mb),
        "command": "python -m bench.import_scale "
        f"--mobile-money-rows {mobile_money_rows} --members {members}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "import.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "import.md").write_text(
        f"Measured {record['measured_at']} on {record['machine']}: "
        f"`{record['command']}` imported {total:,} rows ({record['csv_mib']:,} MiB of CSV, "
        f"{rows['mobile_money']:,} mobile-money rows) in {record['import_seconds']} s, "
        f"{record['rows_per_second']:,} rows/s, peak memory {record['peak_memory_mb']:,} MB.\n"
    )
    console.print((RESULTS / "import.md").read_text())
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
