"""Home Credit adapter: the generated fixture looks like the published files, and the adapter
maps it to contract tables the importer accepts, with every quirk handled and counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.contract import TABLE_SPECS, LoanBook
from training.importer import ImportFailed, Violation
from training.sources import home_credit as hc
from training.sources.home_credit_fixture import FILES, Fixture, write_fixture

REFERENCE = hc.DEFAULT_REFERENCE_DATE


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return write_fixture(tmp_path_factory.mktemp("home-credit") / "files", 300, seed=7)


@pytest.fixture(scope="module")
def imported(
    fixture: Fixture, tmp_path_factory: pytest.TempPathFactory
) -> tuple[hc.HomeCreditImport, LoanBook]:
    result = hc.import_home_credit(fixture.folder, tmp_path_factory.mktemp("books") / "book")
    return result, LoanBook.load(result.folder)


def _raw(fixture: Fixture, name: str) -> pd.DataFrame:
    return pd.read_csv(fixture.folder / name)


def _hc(ids: object) -> list[str]:
    return [f"HC{int(i)}" for i in np.atleast_1d(np.asarray(ids))]


def _examples(exc: ImportFailed) -> list[Violation]:
    return [v for shown in exc.violations.examples.values() for v in shown]


def _copy(fixture: Fixture, tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    shutil.copytree(fixture.folder, folder)
    return folder


# ----------------------------------------------------------------------------- the fixture


def test_fixture_files_have_the_published_columns(fixture: Fixture) -> None:
    expected_counts = {
        "application_train.csv": 122,
        "application_test.csv": 121,
        "bureau.csv": 17,
        "bureau_balance.csv": 3,
        "previous_application.csv": 37,
        "installments_payments.csv": 8,
        "POS_CASH_balance.csv": 8,
        "credit_card_balance.csv": 23,
    }
    for name, count in expected_counts.items():
        header = (fixture.folder / name).read_text().splitlines()[0].split(",")
        assert header == list(FILES[name]), name
        assert len(header) == count, name
    # Spot checks of the published spellings, including the data set's own typo.
    assert "AMT_RECIVABLE" in FILES["credit_card_balance.csv"]
    assert FILES["application_train.csv"][:3] == ("SK_ID_CURR", "TARGET", "NAME_CONTRACT_TYPE")
    assert "NONLIVINGAPARTMENTS_MEDI" in FILES["application_train.csv"]
    assert FILES["application_train.csv"][-1] == "AMT_REQ_CREDIT_BUREAU_YEAR"
    # Every column the adapter reads is in the files it reads.
    for spec in hc.FILES:
        assert set(spec.columns) <= set(FILES[spec.name]), spec.name


def test_fixture_has_the_real_files_quirks(fixture: Fixture) -> None:
    train = _raw(fixture, "application_train.csv")
    previous = _raw(fixture, "previous_application.csv")
    bureau = _raw(fixture, "bureau.csv")
    balance = _raw(fixture, "bureau_balance.csv")
    inst = _raw(fixture, "installments_payments.csv")
    assert (train["DAYS_EMPLOYED"] == hc.SENTINEL_DAYS).any()
    assert (
        train.loc[train["DAYS_EMPLOYED"] == hc.SENTINEL_DAYS, "ORGANIZATION_TYPE"] == "XNA"
    ).all()
    assert (previous["DAYS_FIRST_DRAWING"] == hc.SENTINEL_DAYS).any()
    assert (previous["DAYS_TERMINATION"] == hc.SENTINEL_DAYS).any()
    assert (train["CODE_GENDER"] == "XNA").sum() == len(fixture.xna_gender_ids)
    assert (previous["NAME_CASH_LOAN_PURPOSE"] == "XAP").any()
    assert (previous["CODE_REJECT_REASON"] == "XAP").any()
    assert (previous["NAME_CONTRACT_TYPE"] == "XNA").any()
    assert (train["DAYS_BIRTH"] < 0).all() and (bureau["DAYS_CREDIT"] < 0).all()
    assert (bureau["DAYS_CREDIT_UPDATE"] > 0).any()  # an update after the application
    assert train["EXT_SOURCE_1"].isna().mean() > 0.3 and train["AMT_ANNUITY"].isna().any()
    assert train["SK_ID_CURR"].duplicated().sum() == 1
    assert train.duplicated().sum() == 1  # an exact duplicate row
    test_ids = set(fixture.test_ids)
    assert test_ids.isdisjoint(train["SK_ID_CURR"])
    assert bureau["SK_ID_CURR"].isin(test_ids).any()
    assert previous["SK_ID_CURR"].isin(test_ids).any()
    assert not balance["SK_ID_BUREAU"].isin(bureau["SK_ID_BUREAU"]).all()
    assert not inst["SK_ID_PREV"].isin(previous["SK_ID_PREV"]).all()
    assert balance.duplicated().sum() >= 1
    # Integers are written as integers, amounts as floats, as in the published files.
    first_row = (fixture.folder / "application_train.csv").read_text().splitlines()[1].split(",")
    assert first_row[0].isdigit() and "." in first_row[7]  # SK_ID_CURR, AMT_INCOME_TOTAL


def test_fixture_target_carries_signal(fixture: Fixture) -> None:
    train = _raw(fixture, "application_train.csv").drop_duplicates()
    assert 0.03 < train["TARGET"].mean() < 0.2
    score = -train[["EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3"]].mean(axis=1).fillna(-0.5)
    assert roc_auc_score(train["TARGET"], score) > 0.65


# ----------------------------------------------------------------------------- the mapping


def test_import_produces_the_contract_tables(
    imported: tuple[hc.HomeCreditImport, LoanBook],
) -> None:
    result, book = imported
    assert set(book.tables) == {"members", "applications", "loans", "repayments", "bureau"}
    assert book.source == "home-credit"
    for name, table in book.tables.items():
        assert len(table) > 0, name
        TABLE_SPECS[name].model.validate(table)  # the written book still meets the contract
    info = json.loads((result.folder / "loanbook.json").read_text())
    assert info["home_credit"]["reference_date"] == REFERENCE.isoformat()
    assert info["home_credit"]["dropped"] == result.dropped
    assert pd.Timestamp(info["cutoff"]) >= REFERENCE + hc.OUTCOME_WINDOW


def test_applications_and_members_follow_application_train(
    fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook]
) -> None:
    _, book = imported
    train = _raw(fixture, "application_train.csv").drop_duplicates().set_index("SK_ID_CURR")
    train.index = _hc(train.index)
    members = book.members.set_index("member_id")
    apps = book.applications.set_index("application_id")
    assert sorted(members.index) == sorted(train.index)
    assert set(apps.index) == set(train.index) - set(_hc(fixture.no_annuity_ids))
    raw = train.loc[apps.index]
    assert (apps["default_12m"].astype(int) == raw["TARGET"]).all()
    assert np.allclose(apps["amount_kes"].astype(float), raw["AMT_CREDIT"])
    assert np.allclose(
        apps["declared_monthly_income_kes"].astype(float), raw["AMT_INCOME_TOTAL"] / 12
    )
    term = np.clip(np.round(raw["AMT_CREDIT"] / raw["AMT_ANNUITY"]), 1, 120)
    assert (apps["term_months"].astype(int) == term.astype(int)).all()
    expected_product = raw["NAME_CONTRACT_TYPE"].map(
        {"Cash loans": "development", "Revolving loans": "emergency"}
    )
    assert (apps["product"] == expected_product).all()
    applied = REFERENCE + pd.to_timedelta(raw["HOUR_APPR_PROCESS_START"], unit="h")
    assert (apps["applied_at"] == applied.to_numpy()).all()
    assert (apps["outcome_at"] - apps["applied_at"] == hc.OUTCOME_WINDOW).all()
    assert (apps["member_id"] == apps.index).all()
    m = members.loc[train.index]
    assert (m["age"].astype(int) == np.floor(-train["DAYS_BIRTH"] / 365.25).astype(int)).all()
    assert np.allclose(m["monthly_income_kes"].astype(float), train["AMT_INCOME_TOTAL"] / 12)
    pensioners = train.index[train["NAME_INCOME_TYPE"] == "Pensioner"]
    assert m.loc[pensioners, "employment_type"].isna().all()
    working = train.index[train["NAME_INCOME_TYPE"] == "Working"]
    assert (m.loc[working, "employment_type"] == "salaried").all()
    assert (m["joined_at"] <= REFERENCE + pd.Timedelta(hours=23)).all()
    assert (m["joined_at"] < REFERENCE).any()  # members with earlier applications joined then


def test_xna_becomes_empty(
    fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook]
) -> None:
    _, book = imported
    members = book.members.set_index("member_id")
    assert members.loc[_hc(fixture.xna_gender_ids), "gender"].isna().all()
    assert set(members["gender"].dropna()) == {"female", "male"}
    previous = _raw(fixture, "previous_application.csv")
    assert (previous["NAME_CONTRACT_TYPE"] == "XNA").any()
    assert set(book.table("loans")["product"].dropna()) <= {"development", "asset", "emergency"}
    source = hc.HomeCreditSource(fixture.folder)
    mapped = hc._mapped(pd.Series(["XNA", "XAP", "Cash loans", None]), hc.PRODUCTS)
    assert list(mapped) == [None, None, "development", None]
    assert source.reference == REFERENCE


def test_day_sentinel_becomes_empty(
    fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook]
) -> None:
    source = hc.HomeCreditSource(fixture.folder)
    stamps = source.day_instants(np.array([-10.0, hc.SENTINEL_DAYS, np.nan, 0.0]))
    assert stamps.iloc[0] == REFERENCE - pd.Timedelta(days=10)
    assert stamps.iloc[1:3].isna().all()
    assert stamps.iloc[3] == REFERENCE
    # In the loans: a sentinel first drawing means "disbursed at the decision", a sentinel
    # termination means "still running".
    _, book = imported
    loans = book.table("loans").set_index("loan_id")
    prev = _raw(fixture, "previous_application.csv").set_index("SK_ID_PREV")
    prev.index = [f"HCP{i}" for i in prev.index]
    prev = prev.loc[loans.index]
    no_drawing = prev["DAYS_FIRST_DRAWING"] == hc.SENTINEL_DAYS
    assert no_drawing.any()
    decided = REFERENCE + pd.to_timedelta(prev.loc[no_drawing, "DAYS_DECISION"], unit="D")
    assert (loans.loc[no_drawing, "disbursed_at"] == decided.to_numpy()).all()
    running = prev["DAYS_TERMINATION"] == hc.SENTINEL_DAYS
    assert (loans.loc[running, "status"] == "active").all()
    assert (loans.loc[prev["DAYS_TERMINATION"] < 0, "status"] == "closed").all()
    for table in book.tables.values():
        for column in table.columns:
            if isinstance(table[column].dtype, pd.DatetimeTZDtype):
                assert (table[column].dropna() < REFERENCE + pd.Timedelta(days=900)).all()


def test_orphans_are_dropped_and_counted(
    fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook]
) -> None:
    result, book = imported
    test_ids = set(fixture.test_ids)
    orphan = "SK_ID_CURR not in application_train.csv"
    for name in ("bureau.csv", "previous_application.csv"):
        raw = _raw(fixture, name)
        assert result.dropped[name][orphan] == int(raw["SK_ID_CURR"].isin(test_ids).sum())
    inst = _raw(fixture, "installments_payments.csv")
    assert result.dropped["installments_payments.csv"][orphan] == int(
        inst["SK_ID_CURR"].isin(test_ids).sum()
    )
    assert result.dropped["installments_payments.csv"][
        "SK_ID_PREV not an approved loan in previous_application.csv"
    ] == int(inst["SK_ID_PREV"].isin(fixture.orphan_loans).sum())
    assert result.dropped["bureau_balance.csv"]["SK_ID_BUREAU not in bureau.csv"] == 6
    assert result.dropped["application_train.csv"]["duplicate row"] == 1
    assert result.dropped["bureau_balance.csv"]["duplicate month of an account"] >= 1
    unknown = set(_hc(sorted(test_ids)))
    for name, table in book.tables.items():
        assert unknown.isdisjoint(table["member_id"]), name
    assert (
        not book.table("repayments")["loan_id"]
        .isin([f"HCP{i}" for i in fixture.orphan_loans])
        .any()
    )


def test_bureau_rows(fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook]) -> None:
    _, book = imported
    bureau = book.table("bureau")
    assert (bureau["bureau"] == "other").all()
    assert (bureau["reported_at"] > bureau["opened_at"]).all()
    assert not bureau.duplicated(["account_id", "reported_at"]).any()
    raw = _raw(fixture, "bureau.csv")
    raw = raw[~raw["SK_ID_CURR"].isin(fixture.test_ids)].set_index("SK_ID_BUREAU")
    summary = bureau[bureau["balance_kes"].notna() | bureau["arrears_kes"].notna()]
    summary = summary.drop_duplicates("account_id").set_index("account_id")
    accounts = raw.loc[[int(a[3:]) for a in summary.index]]
    statuses = {"Active": "open", "Closed": "closed", "Sold": "sold", "Bad debt": "written_off"}
    assert (
        summary["status"].to_numpy() == accounts["CREDIT_ACTIVE"].map(statuses).to_numpy()
    ).all()
    assert (summary["days_past_due"].to_numpy() == accounts["CREDIT_DAY_OVERDUE"].to_numpy()).all()
    debt = accounts["AMT_CREDIT_SUM_DEBT"].to_numpy()
    assert np.allclose(summary["balance_kes"].astype(float), np.maximum(debt, 0), equal_nan=True)
    assert (accounts["AMT_CREDIT_SUM_DEBT"] < 0).any()  # the overpaid account became 0
    listed = (summary["status"] == "written_off") | (summary["days_past_due"] >= 90)
    assert (summary["negative_listing"] == listed.astype(int)).all()
    # Monthly rows: STATUS bands at their lower bound; C -> closed; X -> unknown, no days.
    months = bureau[bureau["balance_kes"].isna() & bureau["arrears_kes"].isna()]
    assert set(months["days_past_due"].dropna().astype(int)) <= {0, 1, 31, 61, 91, 121}
    assert months.loc[months["status"] == "unknown", "days_past_due"].isna().all()
    assert (months.loc[months["days_past_due"] >= 91, "negative_listing"] == 1).all()
    # The update after the application is kept, dated after it (and before the cut-off).
    late = bureau[bureau["account_id"] == f"HCB{fixture.positive_update_account}"]
    assert (late["reported_at"] == REFERENCE + pd.Timedelta(days=14)).any()
    early = "month before the account opened (DAYS_CREDIT)"
    assert imported[0].dropped["bureau_balance.csv"][early] >= 1


def test_repayments_rows(fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook]) -> None:
    _, book = imported
    rep = book.table("repayments")
    assert not rep.duplicated(["loan_id", "due_date"]).any()
    assert set(rep["loan_id"]) <= set(book.table("loans")["loan_id"])
    inst = _raw(fixture, "installments_payments.csv")
    inst = inst[inst["SK_ID_PREV"].isin([int(i[3:]) for i in book.table("loans")["loan_id"]])]
    # An instalment paid in two parts: one row, paid the sum, late by the last payment.
    parts = inst.groupby(["SK_ID_PREV", "DAYS_INSTALMENT"]).filter(lambda g: len(g) == 2)
    assert len(parts)
    prev, day = parts.iloc[0][["SK_ID_PREV", "DAYS_INSTALMENT"]]
    both = parts[(parts["SK_ID_PREV"] == prev) & (parts["DAYS_INSTALMENT"] == day)]
    row = rep[
        (rep["loan_id"] == f"HCP{int(prev)}")
        & (rep["due_date"] == REFERENCE + pd.Timedelta(days=float(day)))
    ]
    assert len(row) == 1
    assert np.isclose(float(row["amount_paid_kes"].iloc[0]), both["AMT_PAYMENT"].sum())
    assert np.isclose(float(row["amount_due_kes"].iloc[0]), both["AMT_INSTALMENT"].max())
    last = both["DAYS_ENTRY_PAYMENT"].max()
    assert int(row["days_late"].iloc[0]) == max(0, int(last - day))
    assert row["recorded_at"].iloc[0] == REFERENCE + pd.Timedelta(days=float(last))
    # Loans without instalment rows get monthly rows from POS_CASH / card balances.
    with_instalments = {f"HCP{i}" for i in inst["SK_ID_PREV"]}
    monthly = rep[~rep["loan_id"].isin(with_instalments)]
    assert len(monthly) > 0
    assert (monthly["recorded_at"] == monthly["due_date"]).all()
    pos = _raw(fixture, "POS_CASH_balance.csv")
    late_pos = pos[
        (pos["SK_DPD"] > 0) & pos["SK_ID_PREV"].isin([int(i[3:]) for i in monthly["loan_id"]])
    ]
    assert len(late_pos)
    assert (monthly["days_late"] > 0).any()
    cards = _raw(fixture, "credit_card_balance.csv")
    card_loans = {f"HCP{i}" for i in cards["SK_ID_PREV"]}
    assert monthly["loan_id"].isin(card_loans).any()


def test_partitions_do_not_change_the_tables(
    fixture: Fixture, imported: tuple[hc.HomeCreditImport, LoanBook], tmp_path: Path
) -> None:
    result = hc.import_home_credit(fixture.folder, tmp_path / "book", partition_bytes=50_000)
    book = LoanBook.load(result.folder)
    _, whole = imported
    assert result.dropped == imported[0].dropped
    for name, table in whole.tables.items():
        keys = [c for cols in TABLE_SPECS[name].key_columns().values() for c in cols]
        expected = table.sort_values(keys, ignore_index=True)
        got = book.tables[name].sort_values(keys, ignore_index=True)
        pd.testing.assert_frame_equal(got, expected)
    assert not list(tmp_path.glob(".home-credit-*"))  # spill partitions removed


def test_progress_names_files_and_tables(fixture: Fixture, tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    def progress(name: str, rows: int) -> None:
        seen[name] = seen.get(name, 0) + rows

    result = hc.import_home_credit(fixture.folder, tmp_path / "book", progress=progress)
    assert seen["bureau_balance.csv"] == fixture.rows["bureau_balance.csv"]
    assert seen["installments_payments.csv"] == fixture.rows["installments_payments.csv"]
    assert seen["bureau"] == result.rows["bureau"]
    assert seen["repayments"] == result.rows["repayments"]


# ----------------------------------------------------------------------------- broken files


def _assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "book").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "files"]
    assert leftovers == []


def test_missing_target_column_fails_naming_it(fixture: Fixture, tmp_path: Path) -> None:
    folder = _copy(fixture, tmp_path)
    train = pd.read_csv(folder / "application_train.csv", dtype=str, keep_default_na=False)
    train.drop(columns=["TARGET"]).to_csv(folder / "application_train.csv", index=False)
    with pytest.raises(ImportFailed) as failed:
        hc.import_home_credit(folder, tmp_path / "book")
    [v] = [v for v in _examples(failed.value) if v.column == "TARGET"]
    assert v.file == "application_train.csv" and v.line == 1 and "missing column" in v.reason
    assert "application_train.csv, line 1, column 'TARGET'" in v.text()
    _assert_nothing_written(tmp_path)


def test_non_numeric_amount_fails_naming_file_row_and_column(
    fixture: Fixture, tmp_path: Path
) -> None:
    folder = _copy(fixture, tmp_path)
    path = folder / "application_train.csv"
    train = pd.read_csv(path, dtype=str, keep_default_na=False)
    train.loc[4, "AMT_CREDIT"] = "12O000.0"  # a letter O: row 5, line 6
    train.to_csv(path, index=False)
    with pytest.raises(ImportFailed) as failed:
        hc.import_home_credit(folder, tmp_path / "book")
    [v] = [v for v in _examples(failed.value) if v.column == "AMT_CREDIT"]
    assert (v.file, v.row, v.line, v.value) == ("application_train.csv", 5, 6, "12O000.0")
    assert v.reason == "not a number"
    _assert_nothing_written(tmp_path)


def test_bad_values_in_big_files_fail_with_their_line(fixture: Fixture, tmp_path: Path) -> None:
    folder = _copy(fixture, tmp_path)
    balance = pd.read_csv(folder / "bureau_balance.csv", dtype=str, keep_default_na=False)
    balance.loc[9, "STATUS"] = "Z"
    balance.to_csv(folder / "bureau_balance.csv", index=False)
    inst = pd.read_csv(folder / "installments_payments.csv", dtype=str, keep_default_na=False)
    inst.loc[2, "SK_ID_PREV"] = ""
    inst.to_csv(folder / "installments_payments.csv", index=False)
    train = pd.read_csv(folder / "application_train.csv", dtype=str, keep_default_na=False)
    train.loc[0, "TARGET"] = "2"
    train.to_csv(folder / "application_train.csv", index=False)
    with pytest.raises(ImportFailed) as failed:
        hc.import_home_credit(folder, tmp_path / "book")
    where = {(v.file, v.column): v for v in _examples(failed.value)}
    status = where[("bureau_balance.csv", "STATUS")]
    assert (status.row, status.line, status.value) == (10, 11, "Z")
    prev = where[("installments_payments.csv", "SK_ID_PREV")]
    assert (prev.row, prev.line) == (3, 4) and prev.reason.startswith("empty")
    target = where[("application_train.csv", "TARGET")]
    assert (target.row, target.line, target.value, target.reason) == (1, 2, "2.0", "not 0 or 1")
    _assert_nothing_written(tmp_path)


def test_missing_application_train_fails(fixture: Fixture, tmp_path: Path) -> None:
    folder = _copy(fixture, tmp_path)
    (folder / "application_train.csv").unlink()
    with pytest.raises(ImportFailed) as failed:
        hc.import_home_credit(folder, tmp_path / "book")
    assert any(
        v.file == "application_train.csv" and "not found" in v.reason
        for v in _examples(failed.value)
    )
    _assert_nothing_written(tmp_path)


def test_optional_files_may_be_absent(fixture: Fixture, tmp_path: Path) -> None:
    folder = _copy(fixture, tmp_path)
    for name in ("bureau_balance.csv", "POS_CASH_balance.csv", "credit_card_balance.csv"):
        (folder / name).unlink()
    result = hc.import_home_credit(folder, tmp_path / "book")
    book = LoanBook.load(result.folder)
    assert set(book.tables) == {"members", "applications", "loans", "repayments", "bureau"}
    # Without bureau_balance, one row per bureau.csv account of the book's applicants.
    raw = _raw(fixture, "bureau.csv")
    assert len(book.table("bureau")) == int((~raw["SK_ID_CURR"].isin(fixture.test_ids)).sum())
