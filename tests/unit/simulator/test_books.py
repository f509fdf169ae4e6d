"""Finding the loan book a run plays: a folder, a name, or a clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simulator.books import BookNotFound, book_folder, load_book
from training.contract import LoanBook


def test_a_book_folder_loads_the_same_book(sparse_book: LoanBook, tmp_path: Path) -> None:
    folder = tmp_path / "lender"
    sparse_book.save(folder)

    assert book_folder(str(folder)) == folder
    loaded = load_book(str(folder), profile="tiny")
    assert loaded.source == sparse_book.source
    assert loaded.fingerprint() == sparse_book.fingerprint()


def test_an_unknown_book_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(BookNotFound, match=r"no loan book 'no-such-lender'.*loanbooks"):
        book_folder("no-such-lender")
    with pytest.raises(BookNotFound):
        load_book(str(tmp_path / "empty"), profile="tiny")


def test_the_default_is_the_profiles_synthetic_book_generated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No saved book: training's pipeline generates and saves it; the next run loads that one."""
    from simulator import books
    from training import pipeline
    from training.profiles import Profile, get_profile

    def book_dir(profile: Profile) -> Path:
        return tmp_path / "loanbooks" / f"synthetic-{profile.name}"

    monkeypatch.setattr(pipeline, "world_dir", lambda profile: tmp_path / "world" / profile.name)
    monkeypatch.setattr(pipeline, "synthetic_book_dir", book_dir)
    monkeypatch.setattr(books, "synthetic_book_dir", book_dir)

    # the tiny profile as it is but for its size: generating and fingerprinting its 3,000
    # members took most of the test; the name, seed and path it goes by stay the profile's
    def smaller(name: str) -> Profile:
        return dataclasses.replace(get_profile(name), n_members=300)

    monkeypatch.setattr(books, "get_profile", smaller)
    tiny = smaller("tiny")

    first = load_book(None, profile="tiny")
    assert first.source == "synthetic-tiny" and len(first.members) == tiny.n_members
    assert first.meta["world_seed"] == tiny.seed
    assert (book_dir(tiny) / "loanbook.json").is_file()

    def no_generation(*_args: object, **_kwargs: object) -> LoanBook:
        raise AssertionError("the saved book should have been loaded")

    monkeypatch.setattr(pipeline, "synthetic_book", no_generation)
    again = load_book(None, profile="tiny")
    assert again.meta["world_fingerprint"] == first.meta["world_fingerprint"]
    assert {n: len(t) for n, t in again.tables.items()} == {
        n: len(t) for n, t in first.tables.items()
    }


def test_a_book_moved_in_time_keeps_everything_but_its_instants(small_book: LoanBook) -> None:
    from datetime import timedelta

    from simulator.books import latest_instant, moved_in_time

    delta = timedelta(days=400, seconds=7)
    moved = moved_in_time(small_book, delta)
    assert moved.cutoff == small_book.cutoff + delta
    assert latest_instant(moved) == latest_instant(small_book) + delta
    for name, table in small_book.tables.items():
        after = moved.tables[name]
        assert list(after.columns) == list(table.columns) and len(after) == len(table)
        for column in table.columns:
            if str(table[column].dtype).startswith("datetime64"):
                assert (after[column] - table[column]).dropna().eq(delta).all(), (name, column)
            else:
                assert after[column].equals(table[column]), (name, column)
    assert small_book.applications is not moved.applications  # the original is untouched
