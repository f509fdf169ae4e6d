"""`python -m training import`: the synthetic world's export round-trips, and a corpus of broken
exports each fails with a clear error naming file, row and column, and writes nothing."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from services.common import features as F
from training.__main__ import app
from training.contract import TABLE_SPECS, LoanBook
from training.importer import csv_inputs, import_tables, write_csv
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

runner = CliRunner()


@pytest.fixture(scope="module")
def book() -> LoanBook:
    return loan_book_from_world(generate_world(80, 5))


@pytest.fixture(scope="module")
def clean_export(book: LoanBook, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    write_csv(book, folder)
    return folder


@pytest.fixture
def export(clean_export: Path, tmp_path: Path) -> Path:
    """A private copy of the clean export for one test to break."""
    folder = tmp_path / "export"
    shutil.copytree(clean_export, folder)
    return folder


def run_import(folder: Path, destination: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["import", "--source", "csv", str(folder), "--destination", str(destination), *extra],
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, " ".join(result.output.split())


def test_the_synthetic_export_round_trips_to_the_same_tables(
    book: LoanBook, export: Path, tmp_path: Path
) -> None:
    code, output = run_import(export, tmp_path / "book")
    assert code == 0, output
    assert re.search(r"[\d,]+ rows/s", output) and "peak memory" in output
    imported = LoanBook.load(tmp_path / "book")
    assert imported.fingerprint() == book.fingerprint()
    for name, table in book.tables.items():
        pd.testing.assert_frame_equal(imported.tables[name], table, check_dtype=True)
    assert imported.cutoff == book.cutoff
    # and the feature functions see the same values (the pipeline cannot tell the source)
    as_of = pd.Series(
        book.applications["applied_at"].to_numpy(),
        index=pd.Index(book.applications["member_id"]),
    )
    for compute, table in (
        (F.mobile_money_features, "mobile_money"),
        (F.repayment_features, "repayments"),
    ):
        pd.testing.assert_frame_equal(
            compute(imported.tables[table], as_of), compute(book.tables[table], as_of)
        )


def test_parquet_export_imports_too(book: LoanBook, tmp_path: Path) -> None:
    book.save(tmp_path / "parquet")
    result = runner.invoke(
        app,
        [
            "import",
            "--source",
            "parquet",
            str(tmp_path / "parquet"),
            "--destination",
            str(tmp_path / "book"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert LoanBook.load(tmp_path / "book").fingerprint() == book.fingerprint()


def test_a_failed_import_keeps_the_earlier_loan_book(export: Path, tmp_path: Path) -> None:
    destination = tmp_path / "book"
    assert run_import(export, destination)[0] == 0
    before = LoanBook.load(destination).fingerprint()
    edit(export, "applications", lambda f: f.assign(product=f["product"].where(f.index != 3, "x")))
    code, _ = run_import(export, destination)
    assert code == 1
    assert LoanBook.load(destination).fingerprint() == before
    assert [p.name for p in tmp_path.iterdir()] == ["export", "book"] or sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["book", "export"]


def edit(folder: Path, table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)


def set_cell(table: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        def change(frame: pd.DataFrame) -> pd.DataFrame:
            frame[column] = frame[column].astype(object)
            frame.loc[row - 1, column] = value
            return frame

        edit(folder, table, change)

    return apply


def write_bytes(table: str, data: bytes) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / f"{table}.csv").write_bytes(data)

    return apply


def replace_line(
    table: str, line: int, text_change: Callable[[bytes], bytes]
) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / f"{table}.csv"
        lines = path.read_bytes().split(b"\n")
        lines[line - 1] = text_change(lines[line - 1])
        path.write_bytes(b"\n".join(lines))

    return apply


def _drop_column(table: str, column: str) -> Callable[[Path], None]:
    return lambda folder: edit(folder, table, lambda f: f.drop(columns=[column]))


def _duplicate_row(table: str, row: int) -> Callable[[Path], None]:
    return lambda folder: edit(
        folder, table, lambda f: pd.concat([f, f.iloc[[row - 1]]], ignore_index=True)
    )


def _header_only(table: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / f"{table}.csv"
        path.write_text(path.read_text().split("\n", 1)[0] + "\n")

    return apply


def _semicolons(table: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / f"{table}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.to_csv(path, index=False, sep=";")

    return apply


def _naive_time(table: str, row: int, column: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        def change(frame: pd.DataFrame) -> pd.DataFrame:
            frame.loc[row - 1, column] = frame.loc[row - 1, column][:19]  # drop "+00:00"
            return frame

        edit(folder, table, change)

    return apply


def _remove(table: str) -> Callable[[Path], None]:
    return lambda folder: (folder / f"{table}.csv").unlink()


#: (what is broken, how, the words the error must contain: file, line/row, column, reason)
CORPUS: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
    (
        "missing column",
        _drop_column("applications", "amount_kes"),
        ("applications.csv", "line 1", "'amount_kes'", "missing column"),
    ),
    (
        "wrong type",
        set_cell("applications", 4, "amount_kes", "forty thousand"),
        ("applications.csv", "line 5", "'amount_kes'", "not a number"),
    ),
    (
        "not a whole number",
        set_cell("applications", 2, "term_months", "12.5"),
        ("applications.csv", "line 3", "'term_months'", "not a whole number"),
    ),
    (
        "duplicate key",
        _duplicate_row("members", 7),
        ("members.csv", "line 82", "'member_id'", "duplicate key", "row 7"),
    ),
    (
        "orphan reference",
        set_cell("applications", 3, "member_id", "M9999999"),
        ("applications.csv", "line 4", "'member_id'", "no members row has this member_id"),
    ),
    (
        "orphan loan",
        set_cell("repayments", 10, "loan_id", "L-nowhere"),
        ("repayments.csv", "line 11", "'loan_id'", "no loans row has this loan_id"),
    ),
    (
        "future date",
        set_cell("mobile_money", 20, "occurred_at", "2031-01-01T00:00:00+03:00"),
        ("mobile_money.csv", "line 21", "'occurred_at'", "after the data's cut-off"),
    ),
    (
        "outcome before its application",
        set_cell("applications", 5, "outcome_at", "2020-01-01T00:00:00+00:00"),
        ("applications.csv", "line 6", "'outcome_at'", "not after applied_at"),
    ),
    (
        "negative amount",
        set_cell("mobile_money", 8, "amount_kes", "-250"),
        ("mobile_money.csv", "line 9", "'amount_kes'", "must be at least 0"),
    ),
    (
        "unknown category",
        set_cell("applications", 6, "product", "car_loan"),
        ("applications.csv", "line 7", "'product'", "not an allowed value", "car_loan"),
    ),
    (
        "target with a third value",
        set_cell("applications", 9, "default_12m", "2"),
        ("applications.csv", "line 10", "'default_12m'", "not an allowed value"),
    ),
    (
        "non-UTF-8 bytes",
        replace_line("members", 12, lambda line: line.replace(b"M", b"\xe9M", 1)),
        ("members.csv", "line 12", "not UTF-8", "0xe9"),
    ),
    (
        "empty file",
        write_bytes("loans", b""),
        ("loans.csv", "empty file"),
    ),
    (
        "only a header",
        _header_only("applications"),
        ("applications.csv", "no rows", "only a header"),
    ),
    (
        "wrong delimiter",
        _semicolons("members"),
        ("members.csv", "line 1", "semicolon-delimited"),
    ),
    (
        "gigantic field",
        set_cell("members", 15, "county", "K" * 200_000),
        ("members.csv", "line 16", "'county'", "longer than 10,000 characters"),
    ),
    (
        "mismatched time zones",
        _naive_time("repayments", 30, "recorded_at"),
        ("repayments.csv", "line 31", "'recorded_at'", "mixed time zones"),
    ),
    (
        "ragged row",
        replace_line("loans", 5, lambda line: line + b",extra"),
        ("loans.csv", "line 5", "malformed CSV"),
    ),
    (
        "missing required table",
        _remove("members"),
        ("members", "required table is missing"),
    ),
]


@pytest.mark.parametrize(("broken", "damage", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_broken_export_fails_clearly_and_writes_nothing(
    export: Path,
    tmp_path: Path,
    broken: str,
    damage: Callable[[Path], None],
    expected: tuple[str, ...],
) -> None:
    damage(export)
    destination = tmp_path / "books" / "book"
    report = tmp_path / "violations.json"
    code, output = run_import(export, destination, "--report", str(report))
    assert code == 1, f"{broken}: {output}"
    error = output[output.rindex("error:") :]
    for words in expected:
        assert words in output, f"{broken}: {words!r} not in {output}"
    assert "Traceback" not in output
    assert expected[0] in error  # the last line names the file (or table) at fault
    assert not destination.exists()
    assert list((tmp_path / "books").iterdir()) == []  # no staging folder left behind
    assert report.exists()


def test_a_timestamp_without_zone_needs_the_zone_named(export: Path, tmp_path: Path) -> None:
    def naive(frame: pd.DataFrame) -> pd.DataFrame:
        frame["joined_at"] = frame["joined_at"].str.slice(0, 19)
        return frame

    edit(export, "members", naive)
    code, output = run_import(export, tmp_path / "a")
    assert code == 1 and "without a time zone" in output and "'joined_at'" in output
    code, output = run_import(export, tmp_path / "b", "--assume-timezone", "UTC")
    assert code == 0, output
    joined = LoanBook.load(tmp_path / "b").members["joined_at"]
    assert str(joined.dtype) == "datetime64[ns, UTC]"


def test_violations_are_counted_per_kind_with_the_first_rows(export: Path, tmp_path: Path) -> None:
    edit(export, "mobile_money", lambda f: f.assign(kind="lottery"))
    failed = None
    try:
        import_tables(csv_inputs(export, chunk_rows=1000), tmp_path / "book", source="test")
    except Exception as exc:  # ImportFailed
        failed = exc
    assert failed is not None
    violations = failed.violations  # type: ignore[attr-defined]
    rows = len(pd.read_csv(export / "mobile_money.csv"))
    kind = ("mobile_money", "kind", next(r for t, c, r in violations.counts if c == "kind"))
    assert violations.counts[kind] == rows  # every row counted, across many chunks
    assert [v.row for v in violations.examples[kind]] == [1, 2, 3, 4, 5]
    assert [v.line for v in violations.examples[kind]] == [2, 3, 4, 5, 6]


def test_the_contract_page_is_generated_from_the_code() -> None:
    from training.contract_doc import render

    page = Path(__file__).resolve().parents[3] / "docs" / "data-contract.md"
    assert page.read_text() == render(), "run `python -m training contract` and commit the page"
    for spec in TABLE_SPECS.values():
        assert f"## `{spec.name}`" in page.read_text()


def test_protected_columns_are_never_model_features() -> None:
    from training.contract import PROTECTED_COLUMNS

    assert set(PROTECTED_COLUMNS) == {"gender", "age", "age_band", "county"}
    assert not set(PROTECTED_COLUMNS) & set(F.TABULAR_FEATURES)
    personal = {
        name
        for spec in TABLE_SPECS.values()
        for name, column in spec.columns.items()
        if column.metadata["personal"]
    }
    assert personal == {"national_id", "phone_number"}
    assert not personal & set(F.TABULAR_FEATURES)


def test_spreadsheet_exports_with_a_bom_and_windows_line_ends_import(
    book: LoanBook, export: Path, tmp_path: Path
) -> None:
    for path in export.glob("*.csv"):
        data = path.read_bytes().replace(b"\n", b"\r\n")
        path.write_bytes(b"\xef\xbb\xbf" + data)
    code, output = run_import(export, tmp_path / "book")
    assert code == 0, output
    assert LoanBook.load(tmp_path / "book").fingerprint() == book.fingerprint()
