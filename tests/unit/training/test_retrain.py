"""What a retraining learns from (training/retrain.py): the champion's book plus the live
applications whose outcome matured, and nothing the book cannot take."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from training.contract import TABLE_SPECS, LoanBook
from training.pipeline import split
from training.profiles import get_profile
from training.retrain import (
    LIVE_COLUMNS,
    RetrainRefused,
    extend_book,
    live_applications,
    retraining_splits,
)
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world


@pytest.fixture(scope="module")
def book() -> LoanBook:
    return loan_book_from_world(generate_world(200, seed=3))


def _live(book: LoanBook) -> pd.DataFrame:
    members = book.members["member_id"].astype(str).tolist()
    later = pd.to_datetime(book.applications["applied_at"], utc=True).max()
    rows = [
        {
            "application_id": f"live-{i}",
            "member_id": members[i],
            "sacco_id": book.tenant,
            "applied_at": later + pd.Timedelta(days=30 + i),
            "product": "emergency",
            "amount_kes": 10_000.0 + i,
            "term_months": 6,
            "default_12m": i % 2,
            "outcome_at": later + pd.Timedelta(days=250 + i),
        }
        for i in range(5)
    ]
    # a member the book does not know (no protected attributes, no history), another SACCO's
    # member with the same number (its features are under its own tenant), a replay of a
    # book application, an outcome before its application and a duplicate: all left out
    rows.append(rows[0] | {"application_id": "live-stranger", "member_id": "nobody"})
    rows.append(rows[0] | {"application_id": "live-other-sacco", "sacco_id": "another-sacco"})
    rows.append(rows[0] | {"application_id": str(book.applications["application_id"].iloc[0])})
    rows.append(rows[0] | {"application_id": "live-early", "outcome_at": rows[0]["applied_at"]})
    rows.append(rows[1])
    return pd.DataFrame(rows, columns=list(LIVE_COLUMNS))


def test_only_new_labelled_applications_of_known_members_join_the_book(book: LoanBook) -> None:
    live = live_applications(_live(book), book)
    assert sorted(live["application_id"]) == [f"live-{i}" for i in range(5)]
    extended = extend_book(book, live)
    apps = extended.applications
    assert len(apps) == len(book.applications) + 5
    TABLE_SPECS["applications"].schema.validate(apps)  # still the data contract's table
    # appended: the book's labelled rows keep their positions, and so their split
    assert extended.labelled.head(len(book.labelled))["application_id"].equals(
        book.labelled["application_id"]
    )
    assert apps.tail(5)["application_id"].tolist() == [f"live-{i}" for i in range(5)]
    assert extended.labelled["default_12m"].tail(5).tolist() == [0, 1, 0, 1, 0]
    assert extended.oracle is None  # the live applications' true PD is nobody's to know
    assert extended.members is book.members and extended.meta["live_rows"] == 5
    assert len(book.applications) == len(extend_book(book, live.iloc[0:0]).applications)


def test_rows_without_the_columns_training_needs_are_refused(book: LoanBook) -> None:
    with pytest.raises(RetrainRefused, match="default_12m"):
        live_applications(_live(book).drop(columns=["default_12m"]), book)


def test_the_champions_held_out_rows_stay_held_out_and_live_rows_split_on_their_own(
    book: LoanBook,
) -> None:
    profile = get_profile("tiny")
    live = live_applications(_live(book), book)
    splits = retraining_splits(book, live, profile)
    champion = split(book.labelled, profile)
    n = len(book.labelled)
    for name in ("train", "valid", "test", "out_of_time"):
        mine, theirs = getattr(splits, name), getattr(champion, name)
        assert mine[mine < n].tolist() == theirs.tolist(), name  # the book's rows as before
    everything = sorted(
        i for part in (splits.train, splits.valid, splits.test, splits.out_of_time) for i in part
    )
    assert everything == list(range(n + len(live)))  # each row in exactly one split
    # each live row's split is its own: the same with more rows beside it (a later retraining)
    more = pd.concat([live, live.assign(application_id=live["application_id"] + "-b")])
    again = retraining_splits(book, more, profile)
    for name in ("train", "valid", "test"):
        first = set(getattr(splits, name)[getattr(splits, name) >= n] - n)
        later = set(getattr(again, name)[getattr(again, name) >= n] - n)
        assert first == {i for i in later if i < len(live)}, name


def test_the_job_exits_with_its_own_code_through_its_teardown(
    book: LoanBook, tmp_path: Path
) -> None:
    """`python -m training.retrain` as the retrainer runs it: a refusal is exit 3 and a usage
    error 2, passed through the exit that skips the interpreter's teardown (where pyarrow
    sometimes aborted a job that had just read parquet, turning a 3 into 134)."""
    book.save(tmp_path / "book")
    live = tmp_path / "live.parquet"
    pd.DataFrame({"application_id": ["A0"], "member_id": ["M0"]}).to_parquet(live)

    def job(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "training.retrain", "--live-rows", str(live), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    refused = job("--trigger", "drift", "--book", str(tmp_path / "book"))
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "refused: the live rows lack columns" in refused.stderr
    usage = job("--trigger", "drift", "--book", str(tmp_path / "nowhere"))
    assert usage.returncode == 2 and "no loan book" in usage.stderr
