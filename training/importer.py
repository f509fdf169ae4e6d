"""Import a lender's export into a loan book: validate every table, then write all or nothing.

`python -m training import --source csv|parquet|home-credit DIR` reads each contract table in
bounded chunks (so ten million mobile-money rows fit in a few hundred megabytes), coerces it to
the contract's types, validates it with the contract's pandera models, and checks what a single
row cannot show: keys are unique, references point at rows that exist, and nothing is dated after
the data's cut-off. Every violation is kept with its table, file, row (and line, for CSV), column
and reason; the report counts them per kind and shows the first rows of each. Rows are written to
a temporary folder while they are checked, and the loan book appears under its name only when
every table passed, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from training.contract import CONTRACT_VERSION, TABLE_SPECS, TABLES, LoanBook, TableSpec, age_band

CHUNK_ROWS = 250_000
MAX_FIELD_CHARS = 10_000
EXAMPLES_PER_KIND = 5
DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_ZONE = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


class ImportFailed(Exception):
    """The export broke the contract; nothing was written. Carries the violations."""

    def __init__(self, violations: Violations) -> None:
        super().__init__(violations.summary_line())
        self.violations = violations


@dataclass(frozen=True)
class Violation:
    table: str
    file: str
    row: int | None  # 1-based data row (None: the whole file or column)
    column: str | None
    reason: str
    value: str | None = None
    line: int | None = None  # the CSV line (the header is line 1)

    def where(self) -> str:
        place = self.file
        if self.line is not None:
            place += f", line {self.line}"
        elif self.row is not None:
            place += f", row {self.row}"
        if self.column:
            place += f", column {self.column!r}"
        return place

    def text(self) -> str:
        shown = "" if self.value is None else f" (value {_clip(self.value)!r})"
        return f"{self.where()}: {self.reason}{shown}"


def _clip(value: str, width: int = 60) -> str:
    return value if len(value) <= width else value[:width] + f"… ({len(value):,} characters)"


@dataclass
class Violations:
    """Counts per kind (table, column, reason) and the first rows of each kind."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    examples: dict[tuple[str, str, str], list[Violation]] = field(default_factory=dict)

    def add(self, v: Violation) -> None:
        kind = (v.table, v.column or "", v.reason)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_KIND:
            shown.append(v)

    def add_many(
        self,
        table: str,
        file: str,
        column: str | None,
        reason: str,
        rows: np.ndarray,
        values: Sequence[str | None],
        line_offset: int | None,
    ) -> None:
        """Record one reason for many rows at once, keeping only the examples' details."""
        kind = (table, column or "", reason)
        self.counts[kind] = self.counts.get(kind, 0) + len(rows)
        shown = self.examples.setdefault(kind, [])
        for row, value in zip(rows[: EXAMPLES_PER_KIND - len(shown)], values, strict=False):
            line = None if line_offset is None else int(row) + line_offset
            shown.append(Violation(table, file, int(row), column, reason, value, line))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return self.total > 0

    def summary_line(self) -> str:
        if not self:
            return "no violations"
        first = next(iter(self.examples.values()))[0]
        return f"{self.total:,} violation(s) of the data contract; first: {first.text()}"

    def to_dict(self) -> list[dict[str, Any]]:
        return [
            {
                "table": t,
                "column": c or None,
                "reason": r,
                "count": n,
                "examples": [v.__dict__ for v in self.examples[(t, c, r)]],
            }
            for (t, c, r), n in self.counts.items()
        ]


@dataclass(frozen=True)
class Chunk:
    frame: pd.DataFrame  # raw values (text from CSV, typed from parquet or an adapter)
    first_row: int  # 1-based data row of the frame's first row


@dataclass
class TableInput:
    """Where one contract table comes from, as a stream of chunks."""

    name: str
    file: str
    chunks: Callable[[], Iterator[Chunk]]
    total_rows: int | None = None
    line_offset: int | None = None  # data row + offset = file line (CSV: 1, the header)
    precheck: Callable[[Violations], bool] | None = None  # whole-file checks before reading


@dataclass
class ImportResult:
    folder: Path
    rows: dict[str, int]
    seconds: float
    rows_per_second: float
    peak_memory_mb: float
    cutoff: pd.Timestamp


# ----------------------------------------------------------------------------- readers


def csv_inputs(folder: Path, chunk_rows: int = CHUNK_ROWS) -> list[TableInput]:
    """One input per `<table>.csv` in the folder."""
    inputs = []
    for spec in TABLES:
        path = folder / f"{spec.name}.csv"
        if path.exists():
            inputs.append(_csv_input(spec, path, chunk_rows))
    return inputs


def _csv_input(spec: TableSpec, path: Path, chunk_rows: int) -> TableInput:
    def precheck(violations: Violations) -> bool:
        lines, ok = _scan_utf8(spec.name, path, violations)
        inp.total_rows = max(lines - 1, 0)  # the header is one line (a quoted newline adds one)
        return ok

    def chunks() -> Iterator[Chunk]:
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=chunk_rows,
            encoding="utf-8-sig",  # spreadsheet exports often start with a BOM
        )
        first = 1
        for frame in reader:
            yield Chunk(frame, first)
            first += len(frame)

    inp = TableInput(spec.name, path.name, chunks, line_offset=1, precheck=precheck)
    return inp


def _scan_utf8(table: str, path: Path, violations: Violations) -> tuple[int, bool]:
    """Decode the whole file as UTF-8 in blocks, naming the line of the first bad byte."""
    if path.stat().st_size == 0:
        violations.add(Violation(table, path.name, None, None, "empty file: not even a header"))
        return 0, False
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line = lines + block[: exc.start].count(b"\n") + 1
                byte = block[exc.start : exc.start + 1].hex()
                violations.add(
                    Violation(
                        table,
                        path.name,
                        line - 1 if line > 1 else None,
                        None,
                        f"not UTF-8: byte 0x{byte} cannot be decoded (save the file as UTF-8)",
                        line=line,
                    )
                )
                return lines, False
            lines += block.count(b"\n")
    return lines, True


def parquet_inputs(folder: Path, chunk_rows: int = CHUNK_ROWS) -> list[TableInput]:
    inputs = []
    for spec in TABLES:
        path = folder / f"{spec.name}.parquet"
        if not path.exists():
            continue

        def chunks(path: Path = path) -> Iterator[Chunk]:
            first = 1
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                frame = batch.to_pandas()
                yield Chunk(frame, first)
                first += len(frame)

        def precheck(violations: Violations, path: Path = path, name: str = spec.name) -> bool:
            try:
                pq.ParquetFile(path)
            except Exception as exc:  # pyarrow raises several kinds for a broken file
                violations.add(Violation(name, path.name, None, None, f"not a Parquet file: {exc}"))
                return False
            return True

        total = None
        try:
            total = pq.ParquetFile(path).metadata.num_rows
        except Exception:  # reported by precheck
            total = None
        inputs.append(TableInput(spec.name, path.name, chunks, total, None, precheck))
    return inputs


def frame_input(name: str, file: str, frame: pd.DataFrame, first_row: int = 1) -> TableInput:
    """A table an adapter built in memory (typed values), validated like any file."""

    def chunks() -> Iterator[Chunk]:
        for start in range(0, max(len(frame), 1), CHUNK_ROWS):
            yield Chunk(frame.iloc[start : start + CHUNK_ROWS], first_row + start)

    return TableInput(name, file, chunks, len(frame))


# ----------------------------------------------------------------------------- coercion


def _parse_numbers(raw: pd.Series, whole: bool) -> tuple[pd.Series, pd.Series, str]:
    values = pd.to_numeric(raw, errors="coerce")
    values = values.astype("Float64") if not isinstance(values.dtype, pd.Float64Dtype) else values
    bad = raw.notna() & values.isna()
    reason = "not a number"
    finite = values.isna() | np.isfinite(values.fillna(0).to_numpy(dtype=np.float64))
    if (~finite).any():
        bad |= ~finite
        values = values.where(finite)
        reason = "not a finite number"
    if whole:
        fraction = values.notna() & (values.fillna(0) % 1 != 0)
        if fraction.any():
            bad |= fraction
            values = values.where(~fraction)
            reason = "not a whole number"
        return values.astype("Int64"), bad, reason
    return values, bad, reason


def _parse_timestamps(
    raw: pd.Series, assume_tz: str | None
) -> tuple[pd.Series, list[tuple[pd.Series, str]]]:
    """UTC instants; values without a zone only with `assume_tz`, never mixed with zoned ones."""
    problems: list[tuple[pd.Series, str]] = []
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"), problems
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        if assume_tz is None:
            problems.append(
                (
                    raw.notna(),
                    "timestamp without a time zone (store it with one, or import with "
                    "--assume-timezone)",
                )
            )
            return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]"), problems
        return (
            raw.dt.tz_localize(assume_tz).dt.tz_convert("UTC").astype("datetime64[ns, UTC]"),
            problems,
        )
    text = raw.astype("string").str.strip()
    present = text.notna() & (text != "")
    zoned = present & text.str.contains(_ZONE, regex=True).fillna(False).astype(bool)
    naive = present & ~zoned
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if zoned.any():
        out[zoned] = pd.to_datetime(text[zoned], utc=True, format="ISO8601", errors="coerce")
    if naive.any():
        if zoned.any():
            problems.append(
                (
                    naive,
                    "mixed time zones: this column has values with a time zone and this one "
                    "has none",
                )
            )
        elif assume_tz is None:
            problems.append(
                (
                    naive,
                    "timestamp without a time zone (write it as ISO 8601 with an offset, "
                    "e.g. 2025-03-01T09:30:00+03:00, or import with --assume-timezone)",
                )
            )
        else:
            local = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
            out[naive] = local.dt.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
            out[naive] = out[naive].dt.tz_convert("UTC")
    unparsed = present & out.isna()
    flagged = pd.Series(False, index=raw.index)
    for mask, _ in problems:
        flagged |= mask
    if (unparsed & ~flagged).any():
        problems.append((unparsed & ~flagged, "not an ISO 8601 timestamp"))
    return out, problems


def _text(raw: pd.Series) -> pd.Series:
    values = raw.astype(object)
    present = values.notna()
    values = values.where(present, None)
    values[present] = values[present].map(str)
    return values


@dataclass
class _TableState:
    spec: TableSpec
    file: str
    line_offset: int | None
    rows: int = 0
    key_hashes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    header_checked: bool = False


def _check_header(state: _TableState, frame: pd.DataFrame, violations: Violations) -> bool:
    """The header has the contract's columns and only those (a one-column header with a
    semicolon or tab in it is a wrong delimiter)."""
    spec, columns = state.spec, state.spec.columns
    present = [str(c) for c in frame.columns]
    if len(present) == 1 and any(d in present[0] for d in DELIMITERS):
        sep = next(d for d in DELIMITERS if d in present[0])
        violations.add(
            Violation(
                spec.name,
                state.file,
                None,
                present[0],
                "the header has one column: the "
                f"file looks {DELIMITERS[sep]}-delimited; contract files use commas",
                line=1 if state.line_offset else None,
            )
        )
        return False
    ok = True
    for name, col in columns.items():
        if name not in present and col.required:
            violations.add(
                Violation(
                    spec.name,
                    state.file,
                    None,
                    name,
                    "missing column",
                    line=1 if state.line_offset else None,
                )
            )
            ok = False
    for name in present:
        if name not in columns:
            violations.add(
                Violation(
                    spec.name,
                    state.file,
                    None,
                    name,
                    f"column not in the contract (the {spec.name} table has: {', '.join(columns)})",
                    line=1 if state.line_offset else None,
                )
            )
            ok = False
    if len(set(present)) != len(present):
        violations.add(Violation(spec.name, state.file, None, None, "duplicate column names"))
        ok = False
    return ok


def _coerce(
    state: _TableState, chunk: Chunk, assume_tz: str | None, violations: Violations
) -> tuple[pd.DataFrame, set[tuple[int, str]]]:
    """Contract types, recording every value that cannot take them."""
    spec = state.spec
    raw = chunk.frame.reset_index(drop=True)
    rows = np.arange(chunk.first_row, chunk.first_row + len(raw))
    out: dict[str, pd.Series] = {}
    flagged: set[tuple[int, str]] = set()

    def flag(column: str, mask: pd.Series, reason: str) -> None:
        idx = np.flatnonzero(mask.to_numpy(dtype=bool))
        if len(idx) == 0:
            return
        values = [
            None if pd.isna(raw[column].iloc[i]) else str(raw[column].iloc[i])
            for i in idx[:EXAMPLES_PER_KIND]
        ]
        violations.add_many(
            spec.name, state.file, column, reason, rows[idx], values, state.line_offset
        )
        flagged.update((int(i), column) for i in idx)

    for name, col in spec.columns.items():
        if name not in raw.columns:
            continue
        values = raw[name]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            lengths = values.astype("string").str.len()
            flag(
                name,
                (lengths > MAX_FIELD_CHARS).fillna(False),
                f"field longer than {MAX_FIELD_CHARS:,} characters",
            )
        dtype = str(col.dtype)
        if "datetime" in dtype:
            parsed, problems = _parse_timestamps(values, assume_tz)
            for mask, reason in problems:
                flag(name, mask, reason)
            out[name] = parsed
        elif dtype == "Int64":
            parsed, bad, reason = _parse_numbers(values, whole=True)
            flag(name, bad, reason)
            out[name] = parsed
        elif dtype == "Float64":
            parsed, bad, reason = _parse_numbers(values, whole=False)
            flag(name, bad, reason)
            out[name] = parsed
        else:
            out[name] = _text(values)
    frame = pd.DataFrame(out, index=raw.index)
    if spec.name == "members" and "age_band" not in frame.columns and "age" in frame.columns:
        frame["age_band"] = age_band(frame["age"])
    return frame[[c for c in spec.columns if c in frame.columns]], flagged


_CHECK_REASONS = {
    "greater_than_or_equal_to": "must be at least {min_value}",
    "greater_than": "must be more than {min_value}",
    "less_than_or_equal_to": "must be at most {max_value}",
    "less_than": "must be less than {max_value}",
    "isin": "not an allowed value (allowed: {allowed})",
    "str_length": "text length out of range",
    "not_nullable": "empty, but the contract requires a value",
}


def _reason(check: str, column: pa.Column | None) -> str:
    name = check.split("(")[0]
    if name == "isin" and column is not None:
        allowed = next(c.statistics["allowed_values"] for c in column.checks if c.name == "isin")
        return _CHECK_REASONS["isin"].format(allowed=", ".join(map(str, allowed)))
    if column is not None:
        for c in column.checks:
            if c.name == name and name in _CHECK_REASONS:
                return _CHECK_REASONS[name].format(**c.statistics)
    return _CHECK_REASONS.get(name, f"fails the contract's check {check}")


def _validate(
    state: _TableState,
    frame: pd.DataFrame,
    first_row: int,
    flagged: set[tuple[int, str]],
    violations: Violations,
) -> None:
    spec = state.spec
    try:
        spec.model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna()]
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            group = group.sort_values("index")
            idx = group["index"].astype(int).to_numpy()
            keep = np.array([(int(i), column) not in flagged for i in idx], dtype=bool)
            idx, group = idx[keep], group[keep]
            if len(idx) == 0:
                continue
            values = [None if pd.isna(v) else str(v) for v in group["failure_case"].head(5)]
            violations.add_many(
                spec.name,
                state.file,
                str(column),
                _reason(str(check), spec.columns.get(str(column))),
                idx + first_row,
                values,
                state.line_offset,
            )


def _check_rows(
    state: _TableState,
    frame: pd.DataFrame,
    first_row: int,
    cutoff: pd.Timestamp,
    references: dict[str, pd.Index],
    violations: Violations,
) -> None:
    """Keys, references and time: what pandera cannot see from one chunk alone."""
    spec = state.spec

    def add(column: str, mask: np.ndarray, reason: str) -> None:
        idx = np.flatnonzero(mask)
        if len(idx):
            values = [str(frame[column].iloc[i]) for i in idx[:EXAMPLES_PER_KIND]]
            violations.add_many(
                spec.name, state.file, column, reason, idx + first_row, values, state.line_offset
            )

    for name in spec.timestamp_columns():
        if name in frame.columns:
            add(
                name,
                (frame[name] > cutoff).fillna(False).to_numpy(dtype=bool),
                f"dated after the data's cut-off {cutoff.isoformat()}",
            )
    for earlier, later in spec.ordered:
        if earlier in frame.columns and later in frame.columns:
            # an outcome strictly after its application; a report may share its account's day
            wrong = (
                frame[later] <= frame[earlier]
                if later == "outcome_at"
                else frame[later] < frame[earlier]
            )
            add(
                later,
                wrong.fillna(False).to_numpy(dtype=bool),
                f"{later} is not after {earlier}: an outcome cannot be known before its decision"
                if later == "outcome_at"
                else f"{later} is before {earlier}",
            )
    for name, target in spec.references().items():
        if name in frame.columns and target in references:
            values = frame[name]
            missing = values.notna() & ~values.isin(references[target])
            table, col = target.split(".")
            add(name, missing.to_numpy(dtype=bool), f"no {table} row has this {col}")
    for key, columns in spec.key_columns().items():
        if all(c in frame.columns for c in columns):
            hashes = pd.util.hash_pandas_object(frame[list(columns)], index=False).to_numpy()
            state.key_hashes.setdefault(key, []).append(hashes)


def _check_keys(state: _TableState, violations: Violations) -> None:
    if state.rows == 0:
        return
    rows = np.arange(1, state.rows + 1)  # chunks arrive in order: a hash's position is its row
    for key, parts in state.key_hashes.items():
        hashes = np.concatenate(parts)
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        if len(same) == 0:
            continue
        columns = state.spec.key_columns()[key]
        later, earlier = rows[order[same + 1]], rows[order[same]]
        order_rows = np.argsort(later)
        for first, dup in zip(earlier[order_rows], later[order_rows], strict=True):
            violations.add(
                Violation(
                    state.spec.name,
                    state.file,
                    int(dup),
                    ", ".join(columns),
                    f"duplicate key: the same {' + '.join(columns)} as row {int(first)}",
                    line=None if state.line_offset is None else int(dup) + state.line_offset,
                )
            )


# ----------------------------------------------------------------------------- the import


def _arrow_schema(spec: TableSpec) -> pa_arrow.Schema:
    fields = []
    for name, col in spec.columns.items():
        dtype = str(col.dtype)
        if "datetime" in dtype:
            t = pa_arrow.timestamp("ns", tz="UTC")
        elif dtype == "Int64":
            t = pa_arrow.int64()
        elif dtype == "Float64":
            t = pa_arrow.float64()
        else:
            t = pa_arrow.string()
        fields.append(pa_arrow.field(name, t))
    return pa_arrow.schema(fields)


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def import_tables(
    inputs: list[TableInput],
    destination: Path,
    *,
    source: str,
    cutoff: pd.Timestamp | None = None,
    assume_tz: str | None = None,
    progress: Callable[[str, int], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> ImportResult:
    """Validate every input and write the loan book to `destination`, or raise ImportFailed."""
    started = time.perf_counter()
    cutoff = pd.Timestamp.now(tz="UTC") if cutoff is None else _utc(cutoff)
    violations = Violations()
    by_name = {i.name: i for i in inputs}
    for spec in TABLES:
        if spec.required and spec.name not in by_name:
            violations.add(
                Violation(spec.name, f"{spec.name}.*", None, None, "required table is missing")
            )
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.parent / f".import-{destination.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    references: dict[str, pd.Index] = {}
    rows: dict[str, int] = {}
    try:
        for spec in TABLES:  # contract order: referenced tables before those that refer to them
            inp = by_name.get(spec.name)
            if inp is None:
                continue
            rows[spec.name] = _import_table(
                spec, inp, staging, cutoff, assume_tz, references, violations, progress
            )
        if violations:
            raise ImportFailed(violations)
        seconds = time.perf_counter() - started
        total = sum(rows.values())
        info = {
            "contract_version": CONTRACT_VERSION,
            "source": source,
            "cutoff": cutoff.isoformat(),
            "rows": rows,
            "files": {
                path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(staging.glob("*.parquet"))
            },
            "import": {
                "seconds": round(seconds, 3),
                "rows_per_second": round(total / max(seconds, 1e-9), 1),
                "peak_memory_mb": round(_peak_memory_mb(), 1),
                "assume_timezone": assume_tz,
            },
            **(meta or {}),
        }
        (staging / "loanbook.json").write_text(json.dumps(info, indent=2) + "\n")
        _replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportResult(
        folder=destination,
        rows=rows,
        seconds=seconds,
        rows_per_second=total / max(seconds, 1e-9),
        peak_memory_mb=_peak_memory_mb(),
        cutoff=cutoff,
    )


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _replace(staging: Path, destination: Path) -> None:
    """Swap the staged loan book in; an earlier import of the same name goes only after."""
    old = None
    if destination.exists():
        old = destination.parent / f".old-{destination.name}-{uuid.uuid4().hex[:8]}"
        os.replace(destination, old)
    os.replace(staging, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _import_table(
    spec: TableSpec,
    inp: TableInput,
    staging: Path,
    cutoff: pd.Timestamp,
    assume_tz: str | None,
    references: dict[str, pd.Index],
    violations: Violations,
    progress: Callable[[str, int], None] | None,
) -> int:
    state = _TableState(spec, inp.file, inp.line_offset)
    if inp.precheck is not None and not inp.precheck(violations):
        return 0
    writer: pq.ParquetWriter | None = None
    schema = _arrow_schema(spec)
    keys: dict[str, list[np.ndarray]] = {}
    referenced = {
        t.split(".")[1]
        for s in TABLES
        for t in s.references().values()
        if t.split(".")[0] == spec.name
    }
    try:
        for chunk in _chunks(inp, state, violations):
            if not state.header_checked:
                state.header_checked = True
                if not _check_header(state, chunk.frame, violations):
                    return 0
            frame, flagged = _coerce(state, chunk, assume_tz, violations)
            _validate(state, frame, chunk.first_row, flagged, violations)
            _check_rows(state, frame, chunk.first_row, cutoff, references, violations)
            for col in referenced:
                keys.setdefault(col, []).append(frame[col].dropna().to_numpy(dtype=object))
            state.rows += len(frame)
            if not violations:  # once anything failed, only checking goes on, not writing
                if writer is None:
                    writer = pq.ParquetWriter(staging / f"{spec.name}.parquet", schema)
                writer.write_table(
                    pa_arrow.Table.from_pandas(frame, schema=schema, preserve_index=False)
                )
            if progress is not None:
                progress(spec.name, len(frame))
    finally:
        if writer is not None:
            writer.close()
    if not state.header_checked:  # no chunk at all: a header without rows
        violations.add(Violation(spec.name, inp.file, None, None, "empty file: not even a header"))
        return 0
    if state.rows == 0 and spec.required:
        violations.add(
            Violation(spec.name, inp.file, None, None, "no rows: the file has only a header")
        )
    if state.rows == 0 and writer is None and not violations:
        pq.write_table(schema.empty_table(), staging / f"{spec.name}.parquet")
    _check_keys(state, violations)
    for col, parts in keys.items():
        values = np.concatenate(parts) if parts else np.array([], dtype=object)
        references[f"{spec.name}.{col}"] = pd.Index(values)
    return state.rows


def _chunks(inp: TableInput, state: _TableState, violations: Violations) -> Iterator[Chunk]:
    """The input's chunks; a header-only CSV still yields one empty chunk for its header."""
    try:
        yielded = False
        for chunk in inp.chunks():
            yielded = True
            yield chunk
        if not yielded:
            return
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        violations.add(
            Violation(
                state.spec.name,
                inp.file,
                None if line is None else line - 1,
                None,
                "malformed CSV: "
                + re.sub(r"^.*C error: ", "", str(exc).strip()).replace("Expected", "expected"),
                line=line,
            )
        )


# ----------------------------------------------------------------------------- export


def write_csv(book: LoanBook, folder: Path) -> dict[str, int]:
    """The loan book as contract CSVs (UTC instants with their offset) and its loanbook.json, so
    it can be imported again: what a lender's data team would hand over."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in book.tables.items():
        out = table.copy()
        for column in TABLE_SPECS[name].timestamp_columns():
            if column in out.columns:
                out[column] = out[column].map(
                    lambda t: None if pd.isna(t) else t.isoformat(), na_action=None
                )
        out.to_csv(folder / f"{name}.csv", index=False)
    (folder / "loanbook.json").write_text(
        json.dumps({"source": book.source, "cutoff": book.cutoff.isoformat()}, indent=2) + "\n"
    )
    return {name: len(t) for name, t in book.tables.items()}
