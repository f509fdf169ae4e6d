"""Kaggle's "Home Credit Default Risk" files, unmodified, as the data contract's tables.

Home Credit is the public data set the credit-scoring literature behind Alama trains on, so a
data team must be able to point `python -m training import --source home-credit DIR` at the
published CSV files and get a loan book like any lender's. `import_home_credit` reads the files,
maps them to contract tables and streams those through `training.importer.import_tables`, which
validates every row and writes the book all or nothing.

What becomes what (every choice is one a reader may want to undo, so each is stated here):

- Time. Home Credit has no calendar dates, only day offsets relative to each application
  (negative = before it). Every application is therefore placed on one reference date
  (`reference_date`, default 2018-05-17 UTC, near the competition's data cut) at its
  HOUR_APPR_PROCESS_START, and every DAYS_* offset becomes the instant `reference + days`;
  MONTHS_BALANCE m becomes `reference + m calendar months`. All applications share a day, so an
  out-of-time split is impossible on this source: split at random. The 365243 offset is Home
  Credit's "not applicable" and becomes empty, as do XNA / XAP categories.
- application_train.csv -> members and applications, one each per SK_ID_CURR (ids `HC<id>`).
  TARGET (Home Credit's own "payment difficulties" flag) is `default_12m`; the outcome is taken
  as known 365 days after the application (`outcome_at`). CODE_GENDER F/M -> female/male, XNA ->
  empty; DAYS_BIRTH -> age in whole years (protected); AMT_INCOME_TOTAL is annual -> /12 for the
  monthly income (on the member and as the declared income); AMT_CREDIT -> amount;
  AMT_CREDIT / AMT_ANNUITY rounded -> term in months (1..120; a row without an annuity has no
  term and is dropped, counted); NAME_CONTRACT_TYPE "Cash loans" -> `development` (the SACCO's
  general-purpose instalment loan), "Revolving loans" -> `emergency` (small, quick, short
  credit); NAME_INCOME_TYPE Working / State servant / Maternity leave -> salaried, Commercial
  associate / Businessman -> self_employed, Pensioner / Unemployed / Student -> empty (no
  contract category fits). The member joined at their earliest previous application
  (DAYS_DECISION), or at this application when there is none. application_test.csv has no
  TARGET and is not in the book; the other files' rows about its applicants (and any other id
  application_train does not know) are dropped and counted.
- bureau.csv + bureau_balance.csv -> bureau (bureau "other", account `HCB<SK_ID_BUREAU>`): one
  row per account as bureau.csv reports it at DAYS_CREDIT_UPDATE (CREDIT_ACTIVE Active / Closed
  / Sold / Bad debt -> open / closed / sold / written_off; CREDIT_DAY_OVERDUE -> days past due;
  AMT_CREDIT_SUM / _DEBT / _OVERDUE -> amount / balance / arrears, a negative debt (overpaid)
  -> 0), plus one row per bureau_balance month (STATUS 0..5 -> the lower bound of its band: 0,
  1, 31, 61, 91, 121 days; C -> closed, X -> unknown; the account's amount, no balance). A
  listing is negative when written off or 90+ days past due. Months before the account opened
  are dropped (counted); a month on the day bureau.csv reports is bureau.csv's row. The lender
  type is not in the data and stays empty.
- previous_application.csv -> loans (`HCP<SK_ID_PREV>`): approved previous applications only,
  principal AMT_CREDIT, term CNT_PAYMENT (else the scheduled span DAYS_FIRST_DUE ..
  DAYS_LAST_DUE_1ST_VERSION, else 12 months for an open-ended credit line), disbursed at
  DAYS_FIRST_DRAWING when known else DAYS_DECISION, status closed when DAYS_TERMINATION is before
  the application else active; product Cash -> development, Consumer (goods bought at a shop)
  -> asset, Revolving -> emergency.
- installments_payments.csv -> repayments, one row per instalment (loan, DAYS_INSTALMENT): due
  AMT_INSTALMENT, paid the sum of its AMT_PAYMENTs, days late from the last DAYS_ENTRY_PAYMENT
  (0 when early), recorded at that payment; an instalment with no payment is recorded at the
  application, as late as the days since it fell due. For loans with no instalment rows,
  POS_CASH_balance.csv and credit_card_balance.csv give one row per month (due at the month's
  date): POS months in Active / Demand / Amortized debt state are due the loan's AMT_ANNUITY,
  taken as paid when SK_DPD is 0 and unpaid otherwise (the file has no amounts); card months are
  due AMT_INST_MIN_REGULARITY and paid AMT_PAYMENT_TOTAL_CURRENT; days late is SK_DPD.
- Not produced: profile_snapshots (Home Credit has no deposits, share capital, guarantors or
  tenure; existing loans and listings are in the loans and bureau tables, dated, for features
  to read as of the application, rather than invented numbers in a snapshot), mobile_money and
  guarantors (none in the data).
- Money is copied as published, in Home Credit's own (unstated) currency: no exchange rate is
  invented; the loan book's meta says so.

Memory stays bounded: application_train, bureau and previous_application (a few hundred
thousand to under two million rows, only the columns used) are held in memory; bureau_balance,
installments_payments, POS_CASH_balance and credit_card_balance are streamed with pyarrow and
spilled into hash partitions by account or loan on disk, then mapped one partition at a time.
A value that is not what the published file holds (text in a number column, an empty id, a
missing column) is reported with its file, line and column, and nothing is written.
"""

from __future__ import annotations

import csv
import math
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc

from training.contract import TABLE_SPECS, age_band
from training.importer import (
    CHUNK_ROWS,
    EXAMPLES_PER_KIND,
    Chunk,
    ImportResult,
    TableInput,
    Violation,
    Violations,
    import_tables,
)

SOURCE = "home-credit"
DEFAULT_REFERENCE_DATE = pd.Timestamp("2018-05-17", tz="UTC")
SENTINEL_DAYS = 365243
OUTCOME_WINDOW = pd.Timedelta(days=365)
OPEN_ENDED_TERM_MONTHS = 12
MAX_DAYS_LATE = 3650
BLOCK_BYTES = 16 << 20  # pyarrow CSV block: rows per batch scale with it
PARTITION_BYTES = 16 << 20  # CSV bytes per spill partition: bounds the rows mapped at once
_DAY_NS = 86_400 * 1_000_000_000
_NAT = np.iinfo(np.int64).min

GENDERS = {"F": "female", "M": "male"}
EMPLOYMENT_TYPES = {
    "Working": "salaried",
    "State servant": "salaried",
    "Maternity leave": "salaried",
    "Commercial associate": "self_employed",
    "Businessman": "self_employed",
}
PRODUCTS = {"Cash loans": "development", "Revolving loans": "emergency", "Consumer loans": "asset"}
BUREAU_STATUSES = ("open", "closed", "sold", "written_off", "unknown")
_CREDIT_ACTIVE = {"Active": 0, "Closed": 1, "Sold": 2, "Bad debt": 3}
#: bureau_balance STATUS -> (code, days past due at the band's lower bound, NaN = unknown)
_MONTH_STATUS = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "C": 6, "X": 7}
_MONTH_DPD = np.array([0, 1, 31, 61, 91, 121, 0, np.nan])
_MONTH_BUREAU_STATUS = np.array([0, 0, 0, 0, 0, 0, 1, 4], dtype=np.int8)  # open / closed / unknown
_POS_DUE = ("Active", "Demand", "Amortized debt")


@dataclass(frozen=True)
class HomeCreditFile:
    """One published file: the columns the adapter reads, typed, and which must be filled."""

    name: str
    table: str  # the contract table its problems are reported under
    ids: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.ids, *self.numbers, *self.texts)


APPLICATION_TRAIN = HomeCreditFile(
    "application_train.csv",
    "applications",
    ids=("SK_ID_CURR",),
    numbers=(
        "TARGET",
        "AMT_INCOME_TOTAL",
        "AMT_CREDIT",
        "AMT_ANNUITY",
        "DAYS_BIRTH",
        "HOUR_APPR_PROCESS_START",
    ),
    texts=("NAME_CONTRACT_TYPE", "CODE_GENDER", "NAME_INCOME_TYPE"),
    required=("SK_ID_CURR", "TARGET", "AMT_CREDIT", "NAME_CONTRACT_TYPE"),
)
BUREAU = HomeCreditFile(
    "bureau.csv",
    "bureau",
    ids=("SK_ID_CURR", "SK_ID_BUREAU"),
    numbers=(
        "DAYS_CREDIT",
        "CREDIT_DAY_OVERDUE",
        "AMT_CREDIT_SUM",
        "AMT_CREDIT_SUM_DEBT",
        "AMT_CREDIT_SUM_OVERDUE",
        "DAYS_CREDIT_UPDATE",
    ),
    texts=("CREDIT_ACTIVE",),
    required=("SK_ID_CURR", "SK_ID_BUREAU", "DAYS_CREDIT"),
)
BUREAU_BALANCE = HomeCreditFile(
    "bureau_balance.csv",
    "bureau",
    ids=("SK_ID_BUREAU",),
    numbers=("MONTHS_BALANCE",),
    texts=("STATUS",),
    required=("SK_ID_BUREAU", "MONTHS_BALANCE", "STATUS"),
)
PREVIOUS_APPLICATION = HomeCreditFile(
    "previous_application.csv",
    "loans",
    ids=("SK_ID_PREV", "SK_ID_CURR"),
    numbers=(
        "AMT_ANNUITY",
        "AMT_CREDIT",
        "CNT_PAYMENT",
        "DAYS_DECISION",
        "DAYS_FIRST_DRAWING",
        "DAYS_FIRST_DUE",
        "DAYS_LAST_DUE_1ST_VERSION",
        "DAYS_TERMINATION",
    ),
    texts=("NAME_CONTRACT_TYPE", "NAME_CONTRACT_STATUS"),
    required=("SK_ID_PREV", "SK_ID_CURR", "DAYS_DECISION", "NAME_CONTRACT_STATUS"),
)
INSTALLMENTS = HomeCreditFile(
    "installments_payments.csv",
    "repayments",
    ids=("SK_ID_PREV", "SK_ID_CURR"),
    numbers=(
        "NUM_INSTALMENT_VERSION",
        "NUM_INSTALMENT_NUMBER",
        "DAYS_INSTALMENT",
        "DAYS_ENTRY_PAYMENT",
        "AMT_INSTALMENT",
        "AMT_PAYMENT",
    ),
    required=(
        "SK_ID_PREV",
        "SK_ID_CURR",
        "NUM_INSTALMENT_VERSION",
        "NUM_INSTALMENT_NUMBER",
        "DAYS_INSTALMENT",
        "AMT_INSTALMENT",
    ),
)
POS_CASH = HomeCreditFile(
    "POS_CASH_balance.csv",
    "repayments",
    ids=("SK_ID_PREV", "SK_ID_CURR"),
    numbers=("MONTHS_BALANCE", "SK_DPD"),
    texts=("NAME_CONTRACT_STATUS",),
    required=("SK_ID_PREV", "SK_ID_CURR", "MONTHS_BALANCE", "SK_DPD"),
)
CREDIT_CARD = HomeCreditFile(
    "credit_card_balance.csv",
    "repayments",
    ids=("SK_ID_PREV", "SK_ID_CURR"),
    numbers=(
        "MONTHS_BALANCE",
        "AMT_INST_MIN_REGULARITY",
        "AMT_PAYMENT_CURRENT",
        "AMT_PAYMENT_TOTAL_CURRENT",
        "SK_DPD",
    ),
    required=("SK_ID_PREV", "SK_ID_CURR", "MONTHS_BALANCE", "SK_DPD"),
)
FILES: tuple[HomeCreditFile, ...] = (
    APPLICATION_TRAIN,
    BUREAU,
    BUREAU_BALANCE,
    PREVIOUS_APPLICATION,
    INSTALLMENTS,
    POS_CASH,
    CREDIT_CARD,
)


@dataclass
class HomeCreditImport(ImportResult):
    """The import's result plus what the adapter left out, per file and reason (also in the
    loan book's loanbook.json under `home_credit.dropped`)."""

    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    reference_date: pd.Timestamp = DEFAULT_REFERENCE_DATE


class _Unreadable(Exception):
    """pyarrow refused a value; the file is scanned again as text to say where."""


# ----------------------------------------------------------------------------- small helpers


def _text_ids(prefix: str, values: np.ndarray) -> np.ndarray:
    return (prefix + pd.Series(np.asarray(values, dtype=np.int64)).astype(str)).to_numpy(
        dtype=object
    )


def _utc(ns: np.ndarray) -> pd.Series:
    """int64 nanoseconds (NaT as int64 min) -> a UTC instant column."""
    return pd.Series(np.asarray(ns, dtype=np.int64).view("datetime64[ns]")).dt.tz_localize("UTC")


def _mapped(values: pd.Series, mapping: dict[str, str]) -> np.ndarray:
    """Categories through a mapping; anything unmapped (XNA, XAP, empty) becomes None."""
    out = values.astype(object).map(mapping)
    return out.where(out.notna(), None).to_numpy(dtype=object)


def _float(values: Any) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=np.float64)).astype("Float64")


def _int(values: np.ndarray) -> pd.Series:
    """Whole numbers from floats, NaN -> empty."""
    arr = np.asarray(values, dtype=np.float64)
    out = pd.array(np.where(np.isfinite(arr), arr, 0).astype(np.int64), dtype="Int64")
    out[~np.isfinite(arr)] = pd.NA
    return pd.Series(out)


def _empty(table: str) -> pd.DataFrame:
    """A contract table with no rows and the contract's types."""
    columns: dict[str, pd.Series] = {}
    for name, col in TABLE_SPECS[table].columns.items():
        dtype = str(col.dtype)
        if "datetime" in dtype:
            columns[name] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif dtype in ("Int64", "Float64"):
            columns[name] = pd.Series([], dtype=dtype)
        else:
            columns[name] = pd.Series([], dtype=object)
    return pd.DataFrame(columns)


def _slices(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), CHUNK_ROWS):
        yield frame.iloc[start : start + CHUNK_ROWS]


def _merge(into: Violations, found: Violations) -> None:
    for kind, count in found.counts.items():
        into.counts[kind] = into.counts.get(kind, 0) + count
        shown = into.examples.setdefault(kind, [])
        shown.extend(found.examples.get(kind, [])[: EXAMPLES_PER_KIND - len(shown)])


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `values` in `sorted_ids` and whether each was found."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_ids, values)
    pos = np.minimum(pos, len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == values


# ----------------------------------------------------------------------------- the source


class HomeCreditSource:
    """The published files in one folder, mapped to contract tables (see the module docstring).

    One instance serves one import: it caches the small files, counts what it drops, and keeps
    its spill partitions under `workdir` (which the caller removes).
    """

    def __init__(
        self,
        folder: Path,
        *,
        reference_date: pd.Timestamp | str = DEFAULT_REFERENCE_DATE,
        sacco_id: str = SOURCE,
        workdir: Path | None = None,
        partition_bytes: int = PARTITION_BYTES,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        stamp = pd.Timestamp(reference_date)
        self.reference = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        self.reference = self.reference.tz_convert("UTC")
        self.sacco_id = sacco_id
        self.workdir = Path(workdir) if workdir is not None else self.folder / ".alama-spill"
        self.partition_bytes = partition_bytes
        self.progress = progress
        self.dropped: dict[str, dict[str, int]] = {}
        self._violations = Violations()
        self._cache: dict[str, Any] = {}
        self._headers: dict[str, bool] = {}
        self._ref_ns = int(self.reference.value)

    # ------------------------------------------------------------------ bookkeeping

    def _count(self, file: str, reason: str, n: int) -> None:
        if n:
            per_file = self.dropped.setdefault(file, {})
            per_file[reason] = per_file.get(reason, 0) + int(n)

    def _attach(self, violations: Violations) -> None:
        """Report into the importer's violations from now on (and what was found before)."""
        if self._violations is not violations:
            _merge(violations, self._violations)
            self._violations = violations

    def _flag(
        self, spec: HomeCreditFile, column: str | None, reason: str, rows: np.ndarray, values: list
    ) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows):
            self._violations.add_many(
                spec.table, spec.name, column, reason, rows, values[:EXAMPLES_PER_KIND], 1
            )

    def _days_ns(self, days: np.ndarray) -> np.ndarray:
        """Day offsets -> int64 ns instants; empty and the 365243 sentinel -> NaT."""
        days = np.asarray(days, dtype=np.float64)
        valid = np.isfinite(days) & (days != SENTINEL_DAYS)
        whole = np.round(np.where(valid, days, 0)).astype(np.int64)
        return np.where(valid, self._ref_ns + whole * _DAY_NS, _NAT)

    def _months_ns(self, months: np.ndarray) -> np.ndarray:
        """MONTHS_BALANCE -> the reference date that many calendar months away."""
        months = np.asarray(months, dtype=np.int64)
        if len(months) == 0:
            return np.zeros(0, dtype=np.int64)
        unique, inverse = np.unique(months, return_inverse=True)
        stamps = np.array(
            [(self.reference + pd.DateOffset(months=int(m))).value for m in unique],
            dtype=np.int64,
        )
        return stamps[inverse]

    def day_instants(self, days: np.ndarray) -> pd.Series:
        """Day offsets as UTC instants (the 365243 sentinel and empty values -> empty)."""
        return _utc(self._days_ns(days))

    # ------------------------------------------------------------------ reading

    def _has(self, spec: HomeCreditFile) -> bool:
        return (self.folder / spec.name).exists()

    def _header_ok(self, spec: HomeCreditFile) -> bool:
        """The file exists and has every column the adapter reads; reported once."""
        if spec.name in self._headers:
            return self._headers[spec.name]
        path = self.folder / spec.name
        ok = True
        if not path.exists():
            self._violations.add(
                Violation(spec.table, spec.name, None, None, "file not found in the folder")
            )
            ok = False
        else:
            with path.open(encoding="utf-8", errors="replace", newline="") as f:
                header = next(csv.reader([f.readline()]), [])
            header = [h.strip().lstrip("\ufeff") for h in header]
            if not header or header == [""]:
                self._violations.add(
                    Violation(spec.table, spec.name, None, None, "empty file: not even a header")
                )
                ok = False
            for column in spec.columns:
                if ok and column not in header:
                    self._violations.add(
                        Violation(
                            spec.table,
                            spec.name,
                            None,
                            column,
                            "missing column (the published file has it)",
                            line=1,
                        )
                    )
            ok = ok and all(c in header for c in spec.columns)
        self._headers[spec.name] = ok
        return ok

    def _batches(self, spec: HomeCreditFile) -> Iterator[tuple[int, pd.DataFrame]]:
        """(first data row, typed frame) per block; rows with an empty required value are
        reported and left out. Raises _Unreadable when a value cannot take its type."""
        types: dict[str, pa.DataType] = {c: pa.float64() for c in (*spec.ids, *spec.numbers)}
        types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in spec.texts})
        try:
            reader = pa_csv.open_csv(
                self.folder / spec.name,
                read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=list(spec.columns),
                    column_types=types,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            first = 1
            for batch in reader:
                frame = batch.to_pandas()
                n = len(frame)
                rows = np.arange(first, first + n)
                bad = np.zeros(n, dtype=bool)
                for column in spec.required:
                    empty = frame[column].isna().to_numpy()
                    self._flag(
                        spec,
                        column,
                        "empty, but the published file always fills it",
                        rows[empty],
                        [None] * EXAMPLES_PER_KIND,
                    )
                    bad |= empty
                for column in spec.ids:
                    values = frame[column].to_numpy(dtype=np.float64)
                    fraction = np.isfinite(values) & (values % 1 != 0)
                    self._flag(
                        spec,
                        column,
                        "not a whole number",
                        rows[fraction],
                        [str(v) for v in values[fraction][:EXAMPLES_PER_KIND]],
                    )
                    bad |= fraction
                frame["_row"] = rows
                frame = frame[~bad].reset_index(drop=True)
                for column in spec.ids:
                    frame[column] = frame[column].to_numpy(dtype=np.float64).astype(np.int64)
                if self.progress is not None:
                    self.progress(spec.name, n)
                yield first, frame
                first += n
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _Unreadable(str(exc)) from exc

    def _scan_values(self, spec: HomeCreditFile, message: str) -> None:
        """After pyarrow refused the file: find every value that is not a number, by row."""
        before = self._violations.total
        try:
            reader = pd.read_csv(
                self.folder / spec.name,
                usecols=list(spec.columns),
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                chunksize=CHUNK_ROWS,
                encoding="utf-8",
            )
            first = 1
            for raw in reader:
                rows = np.arange(first, first + len(raw))
                for column in (*spec.ids, *spec.numbers):
                    text = raw[column]
                    numbers = pd.to_numeric(text, errors="coerce")
                    bad = (text.notna() & numbers.isna()).to_numpy()
                    self._flag(
                        spec,
                        column,
                        "not a number",
                        rows[bad],
                        text[bad].head(EXAMPLES_PER_KIND).tolist(),
                    )
                first += len(raw)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            self._violations.add(
                Violation(spec.table, spec.name, None, None, f"unreadable CSV: {exc}".strip())
            )
        if self._violations.total == before:
            self._violations.add(
                Violation(spec.table, spec.name, None, None, f"unreadable CSV: {message}")
            )

    def _read_all(self, spec: HomeCreditFile) -> pd.DataFrame | None:
        """A whole (small) file, or None when it is missing a column or holds a bad value."""
        if not self._header_ok(spec):
            return None
        try:
            frames = [frame for _, frame in self._batches(spec)]
        except _Unreadable as exc:
            self._scan_values(spec, str(exc))
            return None
        if not frames:
            return pd.DataFrame({c: [] for c in (*spec.columns, "_row")})
        return pd.concat(frames, ignore_index=True)

    def _unique(self, spec: HomeCreditFile, frame: pd.DataFrame, key: str) -> pd.DataFrame:
        """Exact duplicate rows are dropped (counted); the same key with other values is an
        error naming both rows."""
        columns = list(spec.columns)
        exact = frame.duplicated(subset=columns, keep="first").to_numpy()
        self._count(spec.name, "duplicate row", int(exact.sum()))
        frame = frame[~exact]
        clash = frame.duplicated(subset=[key], keep="first").to_numpy()
        if clash.any():
            first_rows = frame.drop_duplicates(subset=[key], keep="first").set_index(key)["_row"]
            rows = frame["_row"].to_numpy()[clash]
            keys = frame[key].to_numpy()[clash]
            for row, k in zip(rows[:EXAMPLES_PER_KIND], keys[:EXAMPLES_PER_KIND], strict=False):
                self._violations.add(
                    Violation(
                        spec.table,
                        spec.name,
                        int(row),
                        key,
                        f"duplicate {key}: row {int(first_rows[k])} has it with other values",
                        str(k),
                        int(row) + 1,
                    )
                )
            if clash.sum() > EXAMPLES_PER_KIND:
                kind = (spec.table, key, f"duplicate {key} with other values (more rows)")
                self._violations.counts[kind] = int(clash.sum()) - EXAMPLES_PER_KIND
                self._violations.examples.setdefault(kind, [])
            frame = frame[~clash]
        return frame.reset_index(drop=True)

    # ------------------------------------------------------------------ the small files

    def applicants(self) -> pd.DataFrame | None:
        """application_train.csv's used columns, one row per applicant (None when broken)."""
        if "applicants" not in self._cache:
            frame = self._read_all(APPLICATION_TRAIN)
            if frame is not None:
                target = frame["TARGET"].to_numpy(dtype=np.float64)
                wrong = ~np.isin(target, (0.0, 1.0)) & np.isfinite(target)
                wrong_rows = frame["_row"].to_numpy()[wrong]
                self._flag(
                    APPLICATION_TRAIN,
                    "TARGET",
                    "not 0 or 1",
                    wrong_rows,
                    [str(v) for v in target[wrong][:EXAMPLES_PER_KIND]],
                )
                frame = self._unique(APPLICATION_TRAIN, frame, "SK_ID_CURR")
                frame["_target_ok"] = ~np.isin(frame["_row"].to_numpy(), wrong_rows)
            self._cache["applicants"] = frame
        return self._cache["applicants"]

    def known_ids(self) -> np.ndarray:
        """SK_ID_CURR of application_train, sorted: the applicants the book holds."""
        if "known" not in self._cache:
            apps = self.applicants()
            ids = np.zeros(0, np.int64) if apps is None else apps["SK_ID_CURR"].to_numpy()
            self._cache["known"] = np.unique(ids.astype(np.int64))
        return self._cache["known"]

    def _known(self, spec: HomeCreditFile, ids: np.ndarray) -> np.ndarray:
        """Which rows' SK_ID_CURR is in application_train; the rest are counted."""
        _, found = _lookup(self.known_ids(), np.asarray(ids, dtype=np.int64))
        self._count(spec.name, "SK_ID_CURR not in application_train.csv", int((~found).sum()))
        return found

    def previous(self) -> pd.DataFrame | None:
        """previous_application.csv's used columns, applicants in the book only."""
        if "previous" not in self._cache:
            frame = None
            if self._has(PREVIOUS_APPLICATION):
                frame = self._read_all(PREVIOUS_APPLICATION)
            if frame is not None:
                frame = self._unique(PREVIOUS_APPLICATION, frame, "SK_ID_PREV")
                frame = frame[self._known(PREVIOUS_APPLICATION, frame["SK_ID_CURR"])]
                frame = frame.reset_index(drop=True)
            self._cache["previous"] = frame
        return self._cache["previous"]

    def book_loans(self) -> pd.DataFrame:
        """The approved previous applications as loans (numeric), sorted by SK_ID_PREV."""
        if "loans" not in self._cache:
            prev = self.previous()
            if prev is None:
                self._cache["loans"] = pd.DataFrame(
                    {c: np.zeros(0) for c in ("prev", "curr", "principal", "annuity", "term")}
                )
                return self._cache["loans"]
            status = prev["NAME_CONTRACT_STATUS"].astype(object)
            approved = (status == "Approved").to_numpy()
            self._count(
                PREVIOUS_APPLICATION.name,
                "not approved (refused, cancelled, unused offer): not a loan",
                int((~approved).sum()),
            )
            prev = prev[approved]
            credit = prev["AMT_CREDIT"].to_numpy(dtype=np.float64)
            funded = np.isfinite(credit) & (credit > 0)
            self._count(
                PREVIOUS_APPLICATION.name,
                "approved without a positive AMT_CREDIT",
                int((~funded).sum()),
            )
            prev = prev[funded].sort_values("SK_ID_PREV").reset_index(drop=True)
            count = prev["CNT_PAYMENT"].to_numpy(dtype=np.float64)
            first_due = self._days_ns(prev["DAYS_FIRST_DUE"])
            last_due = self._days_ns(prev["DAYS_LAST_DUE_1ST_VERSION"])
            span = np.where(
                (first_due != _NAT) & (last_due != _NAT),
                np.round((last_due - first_due) / _DAY_NS / 30.4375) + 1,
                np.nan,
            )
            term = np.where(
                np.isfinite(count) & (count >= 1),
                np.round(count),
                np.where(np.isfinite(span) & (span >= 1), span, OPEN_ENDED_TERM_MONTHS),
            )
            drawing = self._days_ns(prev["DAYS_FIRST_DRAWING"])
            drawing = np.where(drawing > self._ref_ns, _NAT, drawing)  # drawn after: unknown
            decided = self._days_ns(prev["DAYS_DECISION"])
            ended = self._days_ns(prev["DAYS_TERMINATION"])
            termination = prev["DAYS_TERMINATION"].to_numpy(dtype=np.float64)
            status_code = np.where(
                (ended != _NAT) & (ended <= self._ref_ns),
                1,  # closed
                np.where(np.isfinite(termination), 0, -1),  # active (sentinel or later) / unknown
            )
            self._cache["loans"] = pd.DataFrame(
                {
                    "prev": prev["SK_ID_PREV"].to_numpy(dtype=np.int64),
                    "curr": prev["SK_ID_CURR"].to_numpy(dtype=np.int64),
                    "product": _mapped(prev["NAME_CONTRACT_TYPE"], PRODUCTS),
                    "principal": prev["AMT_CREDIT"].to_numpy(dtype=np.float64),
                    "annuity": prev["AMT_ANNUITY"].to_numpy(dtype=np.float64),
                    "term": np.clip(term, 1, 120),
                    "disbursed": np.where(drawing != _NAT, drawing, decided),
                    "status": status_code,
                }
            )
        return self._cache["loans"]

    def accounts(self) -> pd.DataFrame | None:
        """bureau.csv's accounts of applicants in the book, sorted by SK_ID_BUREAU."""
        if "accounts" not in self._cache:
            frame = None
            if self._has(BUREAU):
                frame = self._read_all(BUREAU)
            if frame is not None:
                frame = self._unique(BUREAU, frame, "SK_ID_BUREAU")
                self._cache["all_accounts"] = np.unique(frame["SK_ID_BUREAU"].to_numpy(np.int64))
                frame = frame[self._known(BUREAU, frame["SK_ID_CURR"])]
                frame = frame.sort_values("SK_ID_BUREAU").reset_index(drop=True)
            self._cache["accounts"] = frame
        return self._cache["accounts"]

    def cutoff(self) -> pd.Timestamp:
        """After every outcome window and every bureau update (some come after the
        application)."""
        latest = self.reference + OUTCOME_WINDOW + pd.Timedelta(days=1)
        accounts = self.accounts()
        if accounts is not None and len(accounts):
            update = accounts["DAYS_CREDIT_UPDATE"].to_numpy(dtype=np.float64)
            update = update[np.isfinite(update) & (update != SENTINEL_DAYS)]
            if len(update):
                latest = max(latest, self.reference + pd.Timedelta(days=float(update.max()) + 1))
        return latest.ceil("D")

    # ------------------------------------------------------------------ members, applications

    def _aligned(self, frame: pd.DataFrame, rows: np.ndarray) -> Iterator[Chunk]:
        """Chunks whose rows are consecutive file rows, so the importer's row numbers are
        application_train.csv's."""
        if len(frame) == 0:
            yield Chunk(frame, 1)
            return
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(frame)], strict=True):
            for at in range(start, stop, CHUNK_ROWS):
                end = min(at + CHUNK_ROWS, stop)
                yield Chunk(frame.iloc[at:end], int(rows[at]))

    def _applied_ns(self, apps: pd.DataFrame) -> np.ndarray:
        hour = apps["HOUR_APPR_PROCESS_START"].to_numpy(dtype=np.float64)
        hour = np.clip(np.where(np.isfinite(hour), np.round(hour), 0), 0, 23)
        return self._ref_ns + (hour * 3600 * 1_000_000_000).astype(np.int64)

    def members_table(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Members and the application_train.csv row each came from."""
        apps = self.applicants()
        assert apps is not None
        applied = self._applied_ns(apps)
        joined = applied.copy()
        prev = self.previous()
        if prev is not None and len(prev):
            first = prev.groupby("SK_ID_CURR")["DAYS_DECISION"].min()
            earliest = first.reindex(apps["SK_ID_CURR"].to_numpy()).to_numpy(dtype=np.float64)
            earliest_ns = self._days_ns(earliest)
            joined = np.where((earliest_ns != _NAT) & (earliest_ns < applied), earliest_ns, joined)
        born = apps["DAYS_BIRTH"].to_numpy(dtype=np.float64)
        age = np.where(np.isfinite(born) & (born < 0), np.floor(-born / 365.25), np.nan)
        ages = _int(age)
        income = apps["AMT_INCOME_TOTAL"].to_numpy(dtype=np.float64) / 12.0
        member_ids = _text_ids("HC", apps["SK_ID_CURR"].to_numpy())
        n = len(apps)
        frame = pd.DataFrame(
            {
                "member_id": member_ids,
                "sacco_id": np.full(n, self.sacco_id, dtype=object),
                "national_id": np.full(n, None, dtype=object),
                "phone_number": np.full(n, None, dtype=object),
                "gender": _mapped(apps["CODE_GENDER"], GENDERS),
                "age": ages,
                "age_band": age_band(ages).to_numpy(dtype=object),
                "county": np.full(n, None, dtype=object),
                "employment_type": _mapped(apps["NAME_INCOME_TYPE"], EMPLOYMENT_TYPES),
                "monthly_income_kes": _float(income),
                "joined_at": _utc(joined),
            }
        )
        return frame, apps["_row"].to_numpy()

    def applications_table(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Applications with their outcome and the application_train.csv row of each."""
        apps = self.applicants()
        assert apps is not None
        apps = apps[apps["_target_ok"].to_numpy()]
        credit = apps["AMT_CREDIT"].to_numpy(dtype=np.float64)
        annuity = apps["AMT_ANNUITY"].to_numpy(dtype=np.float64)
        usable = np.isfinite(annuity) & (annuity > 0)
        self._count(
            APPLICATION_TRAIN.name,
            "no AMT_ANNUITY, so no term: application left out",
            int((~usable).sum()),
        )
        apps, credit, annuity = apps[usable], credit[usable], annuity[usable]
        applied = self._applied_ns(apps)
        term = np.clip(np.round(credit / annuity), 1, 120)
        ids = _text_ids("HC", apps["SK_ID_CURR"].to_numpy())
        n = len(apps)
        frame = pd.DataFrame(
            {
                "application_id": ids,
                "member_id": ids,
                "sacco_id": np.full(n, self.sacco_id, dtype=object),
                "applied_at": _utc(applied),
                "product": _mapped(apps["NAME_CONTRACT_TYPE"], PRODUCTS),
                "amount_kes": _float(credit),
                "term_months": _int(term),
                "channel": np.full(n, None, dtype=object),
                "declared_monthly_income_kes": _float(
                    apps["AMT_INCOME_TOTAL"].to_numpy(dtype=np.float64) / 12.0
                ),
                "default_12m": _int(apps["TARGET"].to_numpy(dtype=np.float64)),
                "outcome_at": _utc(applied + OUTCOME_WINDOW.value),
            }
        )
        return frame, apps["_row"].to_numpy()

    # ------------------------------------------------------------------ loans

    def loans_table(self) -> pd.DataFrame:
        loans = self.book_loans()
        n = len(loans)
        statuses = np.array(["active", "closed"], dtype=object)
        code = loans["status"].to_numpy()
        return pd.DataFrame(
            {
                "loan_id": _text_ids("HCP", loans["prev"].to_numpy()),
                "member_id": _text_ids("HC", loans["curr"].to_numpy()),
                "application_id": np.full(n, None, dtype=object),
                "product": loans["product"].to_numpy(dtype=object),
                "principal_kes": _float(loans["principal"]),
                "term_months": _int(loans["term"].to_numpy()),
                "disbursed_at": _utc(loans["disbursed"].to_numpy()),
                "status": np.where(code >= 0, statuses[np.clip(code, 0, 1)], None),
            }
        )

    # ------------------------------------------------------------------ spilling

    def _partitions(self, specs: tuple[HomeCreditFile, ...]) -> int:
        size = sum((self.folder / s.name).stat().st_size for s in specs if self._has(s))
        return max(1, math.ceil(size / self.partition_bytes))

    def _spill(
        self,
        spec: HomeCreditFile,
        parts: int,
        prepare: Callable[[pd.DataFrame], pd.DataFrame],
        key: str,
    ) -> list[Path] | None:
        """Stream a big file, keep `prepare`'s numeric columns, and write them into `parts`
        Arrow files by `key` modulo `parts`. None when the file is broken (reported)."""
        if not self._header_ok(spec):
            return None
        folder = self.workdir / spec.name.removesuffix(".csv")
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{i:03d}.arrow" for i in range(parts)]
        writers: list[Any] = [None] * parts
        sinks: list[Any] = [None] * parts
        try:
            for _, frame in self._batches(spec):
                out = prepare(frame)
                if len(out) == 0:
                    continue
                part = (out[key].to_numpy() % parts).astype(np.int64)
                order = np.argsort(part, kind="stable")
                bounds = np.searchsorted(part[order], np.arange(parts + 1))
                table = pa.Table.from_pandas(out.iloc[order], preserve_index=False)
                for i in range(parts):
                    lo, hi = bounds[i], bounds[i + 1]
                    if hi <= lo:
                        continue
                    piece = table.slice(lo, hi - lo)
                    if writers[i] is None:
                        sinks[i] = pa.OSFile(str(paths[i]), "wb")
                        writers[i] = pa_ipc.new_stream(
                            sinks[i],
                            piece.schema,
                            options=pa_ipc.IpcWriteOptions(compression="lz4"),
                        )
                    writers[i].write_table(piece)
        except _Unreadable as exc:
            self._scan_values(spec, str(exc))
            return None
        finally:
            for writer, sink in zip(writers, sinks, strict=True):
                if writer is not None:
                    writer.close()
                    sink.close()
        return paths

    @staticmethod
    def _part(path: Path | None) -> pd.DataFrame | None:
        if path is None or not path.exists():
            return None
        with pa.memory_map(str(path)) as source:
            return pa_ipc.open_stream(source).read_all().to_pandas()

    # ------------------------------------------------------------------ bureau

    def _bureau_summary(self, acc: pd.DataFrame) -> pd.DataFrame:
        """bureau.csv's own report of each account, at DAYS_CREDIT_UPDATE."""
        opened = self._days_ns(acc["DAYS_CREDIT"])
        reported = self._days_ns(acc["DAYS_CREDIT_UPDATE"])
        reported = np.where((reported == _NAT) | (reported < opened), opened, reported)
        status = acc["CREDIT_ACTIVE"].astype(object).map(_CREDIT_ACTIVE)
        status = status.fillna(4).to_numpy(dtype=np.int8)
        dpd = acc["CREDIT_DAY_OVERDUE"].to_numpy(dtype=np.float64)
        debt = acc["AMT_CREDIT_SUM_DEBT"].to_numpy(dtype=np.float64)
        return pd.DataFrame(
            {
                "account": acc["SK_ID_BUREAU"].to_numpy(dtype=np.int64),
                "member": acc["SK_ID_CURR"].to_numpy(dtype=np.int64),
                "reported": reported,
                "opened": opened,
                "amount": acc["AMT_CREDIT_SUM"].to_numpy(dtype=np.float64),
                "balance": np.where(np.isfinite(debt), np.maximum(debt, 0.0), np.nan),
                "arrears": acc["AMT_CREDIT_SUM_OVERDUE"].to_numpy(dtype=np.float64),
                "dpd": dpd,
                "status": status,
                "listed": ((status == 3) | (np.nan_to_num(dpd) >= 90)).astype(np.int8),
            }
        )

    def _prepare_months(self, frame: pd.DataFrame) -> pd.DataFrame:
        spec = BUREAU_BALANCE
        status = frame["STATUS"].astype(object).map(_MONTH_STATUS)
        unknown = status.isna().to_numpy()
        self._flag(
            spec,
            "STATUS",
            "not a bureau_balance STATUS (0-5, C or X)",
            frame["_row"].to_numpy()[unknown],
            frame["STATUS"].astype(object)[unknown].head(EXAMPLES_PER_KIND).tolist(),
        )
        months = frame["MONTHS_BALANCE"].to_numpy(dtype=np.float64)
        fraction = months % 1 != 0
        self._flag(
            spec,
            "MONTHS_BALANCE",
            "not a whole number",
            frame["_row"].to_numpy()[fraction],
            [str(v) for v in months[fraction][:EXAMPLES_PER_KIND]],
        )
        keep = ~unknown & ~fraction
        account = frame["SK_ID_BUREAU"].to_numpy(dtype=np.int64)
        _, in_file = _lookup(self._cache.get("all_accounts", np.zeros(0, np.int64)), account)
        self._count(spec.name, "SK_ID_BUREAU not in bureau.csv", int((keep & ~in_file).sum()))
        accounts = self.accounts()
        book = np.zeros(0, np.int64) if accounts is None else accounts["SK_ID_BUREAU"].to_numpy()
        _, in_book = _lookup(book, account)
        self._count(
            spec.name,
            "account of an SK_ID_CURR not in application_train.csv",
            int((keep & in_file & ~in_book).sum()),
        )
        keep &= in_book
        return pd.DataFrame(
            {
                "account": account[keep],
                "month": months[keep].astype(np.int64),
                "code": status.to_numpy()[keep].astype(np.int8),
            }
        )

    def bureau_chunks(self) -> Iterator[Chunk]:
        accounts = self.accounts()
        if accounts is None:
            return
        parts = self._partitions((BUREAU, BUREAU_BALANCE))
        paths: list[Path] | None = None
        if self._has(BUREAU_BALANCE):
            paths = self._spill(BUREAU_BALANCE, parts, self._prepare_months, "account")
        summary = self._bureau_summary(accounts)
        part_of = summary["account"].to_numpy() % parts
        first = 1
        for i in range(parts):
            rows = self._bureau_partition(
                summary[part_of == i], self._part(paths[i]) if paths else None
            )
            for piece in _slices(rows):
                out = self._bureau_frame(piece)
                yield Chunk(out, first)
                first += len(out)
        if first == 1:
            yield Chunk(_empty("bureau"), 1)

    def _bureau_partition(self, summary: pd.DataFrame, months: pd.DataFrame | None) -> pd.DataFrame:
        if months is None or len(months) == 0:
            rows = summary
        else:
            spec = BUREAU_BALANCE
            dup = months.duplicated(subset=["account", "month"], keep="first").to_numpy()
            self._count(spec.name, "duplicate month of an account", int(dup.sum()))
            months = months[~dup]
            ids = summary["account"].to_numpy()
            order = np.argsort(ids, kind="stable")
            pos, _ = _lookup(ids[order], months["account"].to_numpy())
            at = order[pos]
            reported = self._months_ns(months["month"].to_numpy())
            opened = summary["opened"].to_numpy()[at]
            early = reported < opened
            self._count(
                spec.name, "month before the account opened (DAYS_CREDIT)", int(early.sum())
            )
            same = reported == summary["reported"].to_numpy()[at]
            self._count(
                spec.name, "month on the day bureau.csv reports the account", int(same.sum())
            )
            keep = ~early & ~same
            code = months["code"].to_numpy()[keep]
            at = at[keep]
            dpd = _MONTH_DPD[code]
            monthly = pd.DataFrame(
                {
                    "account": months["account"].to_numpy()[keep],
                    "member": summary["member"].to_numpy()[at],
                    "reported": reported[keep],
                    "opened": opened[keep],
                    "amount": summary["amount"].to_numpy()[at],
                    "balance": np.nan,
                    "arrears": np.nan,
                    "dpd": dpd,
                    "status": _MONTH_BUREAU_STATUS[code],
                    "listed": (np.nan_to_num(dpd) >= 90).astype(np.int8),
                }
            )
            rows = pd.concat([summary, monthly], ignore_index=True)
            rows = rows.sort_values(["account", "reported"], kind="stable", ignore_index=True)
        # The importer wants a report strictly after the opening: a report on the opening
        # instant is stamped one second later.
        reported = rows["reported"].to_numpy().copy()
        opened = rows["opened"].to_numpy()
        reported = np.where(reported <= opened, opened + 1_000_000_000, reported)
        rows = rows.assign(reported=reported)
        return rows

    def _bureau_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        n = len(rows)
        statuses = np.array(BUREAU_STATUSES, dtype=object)
        return pd.DataFrame(
            {
                "member_id": _text_ids("HC", rows["member"].to_numpy()),
                "bureau": np.full(n, "other", dtype=object),
                "account_id": _text_ids("HCB", rows["account"].to_numpy()),
                "reported_at": _utc(rows["reported"].to_numpy()),
                "lender_type": np.full(n, None, dtype=object),
                "opened_at": _utc(rows["opened"].to_numpy()),
                "amount_kes": _float(rows["amount"]),
                "balance_kes": _float(rows["balance"]),
                "arrears_kes": _float(rows["arrears"]),
                "days_past_due": _int(rows["dpd"].to_numpy()),
                "status": statuses[rows["status"].to_numpy(dtype=np.int64)],
                "negative_listing": _int(rows["listed"].to_numpy(dtype=np.float64)),
            }
        )

    # ------------------------------------------------------------------ repayments

    def _in_book(self, spec: HomeCreditFile, frame: pd.DataFrame) -> np.ndarray:
        """Rows of applicants and loans the book holds; the others are counted."""
        known = self._known(spec, frame["SK_ID_CURR"].to_numpy())
        _, loan = _lookup(self.book_loans()["prev"].to_numpy(), frame["SK_ID_PREV"].to_numpy())
        self._count(
            spec.name,
            "SK_ID_PREV not an approved loan in previous_application.csv",
            int((known & ~loan).sum()),
        )
        return known & loan

    def _prepare_instalments(self, frame: pd.DataFrame) -> pd.DataFrame:
        keep = self._in_book(INSTALLMENTS, frame)
        f = frame[keep]
        return pd.DataFrame(
            {
                "prev": f["SK_ID_PREV"].to_numpy(dtype=np.int64),
                "version": f["NUM_INSTALMENT_VERSION"].to_numpy(dtype=np.float64),
                "number": f["NUM_INSTALMENT_NUMBER"].to_numpy(dtype=np.float64),
                "day": f["DAYS_INSTALMENT"].to_numpy(dtype=np.float64),
                "entry": f["DAYS_ENTRY_PAYMENT"].to_numpy(dtype=np.float64),
                "due": f["AMT_INSTALMENT"].to_numpy(dtype=np.float64),
                "paid": f["AMT_PAYMENT"].to_numpy(dtype=np.float64),
            }
        )

    def _prepare_pos(self, frame: pd.DataFrame) -> pd.DataFrame:
        keep = self._in_book(POS_CASH, frame)
        due = frame["NAME_CONTRACT_STATUS"].astype(object).isin(_POS_DUE).to_numpy()
        self._count(
            POS_CASH.name,
            "month with no instalment due (not Active, Demand or Amortized debt)",
            int((keep & ~due).sum()),
        )
        f = frame[keep & due]
        return pd.DataFrame(
            {
                "prev": f["SK_ID_PREV"].to_numpy(dtype=np.int64),
                "month": f["MONTHS_BALANCE"].to_numpy(dtype=np.float64),
                "dpd": f["SK_DPD"].to_numpy(dtype=np.float64),
            }
        )

    def _prepare_cards(self, frame: pd.DataFrame) -> pd.DataFrame:
        keep = self._in_book(CREDIT_CARD, frame)
        due = frame["AMT_INST_MIN_REGULARITY"].to_numpy(dtype=np.float64)
        paid = frame["AMT_PAYMENT_TOTAL_CURRENT"].to_numpy(dtype=np.float64)
        paid = np.where(np.isfinite(paid), paid, frame["AMT_PAYMENT_CURRENT"].to_numpy(np.float64))
        dpd = frame["SK_DPD"].to_numpy(dtype=np.float64)
        active = (np.nan_to_num(due) > 0) | (np.nan_to_num(paid) > 0) | (dpd > 0)
        self._count(
            CREDIT_CARD.name, "month with nothing due, paid or overdue", int((keep & ~active).sum())
        )
        keep &= active
        return pd.DataFrame(
            {
                "prev": frame["SK_ID_PREV"].to_numpy(dtype=np.int64)[keep],
                "month": frame["MONTHS_BALANCE"].to_numpy(dtype=np.float64)[keep],
                "due": np.nan_to_num(due[keep]),
                "paid": np.nan_to_num(paid[keep]),
                "dpd": dpd[keep],
            }
        )

    def repayments_chunks(self) -> Iterator[Chunk]:
        specs = (INSTALLMENTS, POS_CASH, CREDIT_CARD)
        present = tuple(s for s in specs if self._has(s))
        parts = self._partitions(present)
        spilled: dict[str, list[Path] | None] = {}
        preparers = {
            INSTALLMENTS.name: self._prepare_instalments,
            POS_CASH.name: self._prepare_pos,
            CREDIT_CARD.name: self._prepare_cards,
        }
        for spec in present:
            spilled[spec.name] = self._spill(spec, parts, preparers[spec.name], "prev")
        first = 1
        for i in range(parts):
            pieces = {
                name: self._part(paths[i]) if paths is not None else None
                for name, paths in spilled.items()
            }
            rows = self._repayment_partition(
                pieces.get(INSTALLMENTS.name),
                pieces.get(POS_CASH.name),
                pieces.get(CREDIT_CARD.name),
            )
            for piece in _slices(rows):
                out = self._repayment_frame(piece)
                yield Chunk(out, first)
                first += len(out)
        if first == 1:
            yield Chunk(_empty("repayments"), 1)

    def _repayment_partition(
        self,
        inst: pd.DataFrame | None,
        pos: pd.DataFrame | None,
        cards: pd.DataFrame | None,
    ) -> pd.DataFrame:
        """One row per (loan, due date): instalments first, then POS and card months of loans
        that have no instalment rows."""
        loans = self.book_loans()
        frames = []
        with_instalments = np.zeros(0, dtype=np.int64)
        if inst is not None and len(inst):
            per = inst.groupby(["prev", "version", "number", "day"], sort=False).agg(
                due=("due", "max"), paid=("paid", "sum"), entry=("entry", "max")
            )
            per = (
                per.groupby(level=["prev", "day"], sort=False)
                .agg(due=("due", "sum"), paid=("paid", "sum"), entry=("entry", "max"))
                .reset_index()
            )
            day = per["day"].to_numpy(dtype=np.float64)
            entry = per["entry"].to_numpy(dtype=np.float64)
            paid_on = np.isfinite(entry)
            late = np.where(paid_on, np.maximum(entry - day, 0), -day)
            frames.append(
                pd.DataFrame(
                    {
                        "prev": per["prev"].to_numpy(dtype=np.int64),
                        "due_at": self._days_ns(day),
                        "due": per["due"].to_numpy(dtype=np.float64),
                        "paid": per["paid"].to_numpy(dtype=np.float64),
                        "late": late,
                        "recorded": np.where(paid_on, self._days_ns(entry), self._ref_ns),
                    }
                )
            )
            with_instalments = np.unique(per["prev"].to_numpy(dtype=np.int64))
        for name, months in ((POS_CASH.name, pos), (CREDIT_CARD.name, cards)):
            if months is None or len(months) == 0:
                continue
            _, covered = _lookup(with_instalments, months["prev"].to_numpy())
            self._count(name, "month of a loan that has instalment rows", int(covered.sum()))
            months = months[~covered]
            due_at = self._months_ns(months["month"].to_numpy(dtype=np.int64))
            dpd = months["dpd"].to_numpy(dtype=np.float64)
            if name == POS_CASH.name:
                at, _ = _lookup(loans["prev"].to_numpy(), months["prev"].to_numpy())
                annuity = loans["annuity"].to_numpy()[at]
                fallback = loans["principal"].to_numpy()[at] / loans["term"].to_numpy()[at]
                due = np.where(np.isfinite(annuity) & (annuity > 0), annuity, fallback)
                paid = np.where(dpd == 0, due, 0.0)
            else:
                due = months["due"].to_numpy(dtype=np.float64)
                paid = months["paid"].to_numpy(dtype=np.float64)
            frames.append(
                pd.DataFrame(
                    {
                        "prev": months["prev"].to_numpy(dtype=np.int64),
                        "due_at": due_at,
                        "due": due,
                        "paid": paid,
                        "late": dpd,
                        "recorded": due_at,
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=["prev", "due_at", "due", "paid", "late", "recorded"])
        rows = pd.concat(frames, ignore_index=True)
        dup = rows.duplicated(subset=["prev", "due_at"], keep="first").to_numpy()
        self._count(
            "POS_CASH_balance.csv, credit_card_balance.csv",
            "second row for the same loan and month",
            int(dup.sum()),
        )
        rows = rows[~dup].sort_values(["prev", "due_at"], kind="stable", ignore_index=True)
        return rows.assign(late=np.clip(np.round(rows["late"].to_numpy()), 0, MAX_DAYS_LATE))

    def _repayment_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        loans = self.book_loans()
        at, _ = _lookup(loans["prev"].to_numpy(), rows["prev"].to_numpy(dtype=np.int64))
        return pd.DataFrame(
            {
                "loan_id": _text_ids("HCP", rows["prev"].to_numpy()),
                "member_id": _text_ids("HC", loans["curr"].to_numpy()[at]),
                "due_date": _utc(rows["due_at"].to_numpy()),
                "amount_due_kes": _float(rows["due"]),
                "amount_paid_kes": _float(rows["paid"]),
                "days_late": _int(rows["late"].to_numpy(dtype=np.float64)),
                "recorded_at": _utc(rows["recorded"].to_numpy()),
            }
        )

    # ------------------------------------------------------------------ inputs

    def inputs(self) -> list[TableInput]:
        """The contract tables as importer inputs, streamed in the importer's order."""

        def precheck(*needs: Callable[[], bool]) -> Callable[[Violations], bool]:
            def check(violations: Violations) -> bool:
                self._attach(violations)
                return all([need() for need in needs])

            return check

        def train_ok() -> bool:
            return self.applicants() is not None

        def members() -> Iterator[Chunk]:
            frame, rows = self.members_table()
            yield from self._aligned(frame, rows)

        def applications() -> Iterator[Chunk]:
            frame, rows = self.applications_table()
            yield from self._aligned(frame, rows)

        def loans() -> Iterator[Chunk]:
            yield Chunk(self.loans_table(), 1)

        def previous_ok() -> bool:
            return self.previous() is not None

        def accounts_ok() -> bool:
            return self.accounts() is not None

        def histories_ok() -> bool:
            return all(
                self._header_ok(s) for s in (INSTALLMENTS, POS_CASH, CREDIT_CARD) if self._has(s)
            )

        def balance_ok() -> bool:
            return not self._has(BUREAU_BALANCE) or self._header_ok(BUREAU_BALANCE)

        train = APPLICATION_TRAIN.name
        result = [
            TableInput("members", train, members, None, 1, precheck(train_ok)),
            TableInput("applications", train, applications, None, 1, precheck(train_ok)),
        ]
        if self._has(PREVIOUS_APPLICATION):
            result.append(
                TableInput(
                    "loans",
                    f"{PREVIOUS_APPLICATION.name} (approved, as loans)",
                    loans,
                    None,
                    None,
                    precheck(train_ok, previous_ok),
                )
            )
            if any(self._has(s) for s in (INSTALLMENTS, POS_CASH, CREDIT_CARD)):
                result.append(
                    TableInput(
                        "repayments",
                        "repayments (from installments_payments, POS_CASH_balance, "
                        "credit_card_balance)",
                        self.repayments_chunks,
                        None,
                        None,
                        precheck(train_ok, previous_ok, histories_ok),
                    )
                )
        if self._has(BUREAU):
            result.append(
                TableInput(
                    "bureau",
                    "bureau (from bureau.csv, bureau_balance.csv)",
                    self.bureau_chunks,
                    None,
                    None,
                    precheck(train_ok, accounts_ok, balance_ok),
                )
            )
        return result

    def meta(self) -> dict[str, Any]:
        """What loanbook.json records about this source (filled in while streaming)."""
        return {
            "home_credit": {
                "reference_date": self.reference.isoformat(),
                "currency": "as published by Home Credit (unstated); not converted to KES",
                "outcome": "TARGET: Home Credit's payment-difficulties flag",
                "dropped": self.dropped,
                "tables_not_produced": ["profile_snapshots", "mobile_money", "guarantors"],
            }
        }


# ----------------------------------------------------------------------------- the entry point


def import_home_credit(
    folder: Path,
    destination: Path,
    *,
    reference_date: pd.Timestamp | str = DEFAULT_REFERENCE_DATE,
    sacco_id: str = SOURCE,
    progress: Callable[[str, int], None] | None = None,
    partition_bytes: int = PARTITION_BYTES,
    tenant: str | None = None,
) -> HomeCreditImport:
    """Import the unmodified Home Credit files in `folder` as a loan book at `destination`.

    Raises `training.importer.ImportFailed` (nothing written) when a file is missing a column,
    holds a value of the wrong type, or the mapped tables break the contract. `progress` gets
    (name, rows): a Home Credit file's name while it is read, then the contract table's name
    while its rows are validated.
    """
    folder, destination = Path(folder), Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    workdir = destination.parent / f".home-credit-{destination.name}-{uuid.uuid4().hex[:8]}"
    source = HomeCreditSource(
        folder,
        reference_date=reference_date,
        sacco_id=sacco_id,
        workdir=workdir,
        partition_bytes=partition_bytes,
        progress=progress,
    )
    try:
        meta = source.meta()  # its `dropped` dict fills while the tables stream
        if tenant is not None:
            meta["tenant"] = tenant
        result = import_tables(
            source.inputs(),
            destination,
            source=SOURCE,
            cutoff=source.cutoff(),
            progress=progress,
            meta=meta,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return HomeCreditImport(
        folder=result.folder,
        rows=result.rows,
        seconds=result.seconds,
        rows_per_second=result.rows_per_second,
        peak_memory_mb=result.peak_memory_mb,
        cutoff=result.cutoff,
        dropped=source.dropped,
        reference_date=source.reference,
    )
