"""Which loan book a run plays: an imported one by name or folder, else a profile's synthetic one.

Every source reaches the simulator as the data contract's `LoanBook`, so a lender's imported
history is replayed through the running services exactly as the synthetic world is.
`training.pipeline` (models, torch) is imported only when the synthetic book must be generated,
so loading a saved book stays cheap.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pandas as pd

from training.contract import LoanBook
from training.paths import LOAN_BOOKS, synthetic_book_dir
from training.profiles import get_profile

log = logging.getLogger(__name__)
BOOK_FILE = "loanbook.json"


class BookNotFound(LookupError):
    """The named loan book is neither a folder nor a name under artifacts/loanbooks/."""


def book_folder(book: str) -> Path:
    """A folder holding `loanbook.json`, given as a path or as a name under artifacts/loanbooks/."""
    given = Path(book).expanduser()
    if (given / BOOK_FILE).is_file():
        return given
    named = LOAN_BOOKS / book
    if (named / BOOK_FILE).is_file():
        return named
    known = sorted(p.parent.name for p in LOAN_BOOKS.glob(f"*/{BOOK_FILE}"))
    raise BookNotFound(
        f"no loan book {book!r}: not a folder with {BOOK_FILE}, nor a name in {LOAN_BOOKS}"
        f" (there: {', '.join(known) or 'none'}); import one with `python -m training import`"
    )


def synthetic_book(profile_name: str) -> LoanBook:
    """The profile's synthetic loan book, saved by training; generated (and saved) when absent,
    built for another world, or written by an older contract version."""
    profile = get_profile(profile_name)
    folder = synthetic_book_dir(profile)
    if (folder / BOOK_FILE).is_file():
        try:
            book = LoanBook.load(folder)
        except ValueError as exc:  # another contract version: build it again below
            log.info("rebuilding the synthetic loan book: %s", exc)
        else:
            if book.meta.get("world_seed") == profile.seed and len(book.members) == (
                profile.n_members
            ):
                return book
    from training import pipeline  # generation needs the models' module and its imports

    return pipeline.synthetic_book(profile, echo=log.info)


def load_book(book: str | None, profile: str) -> LoanBook:
    """`book` (a name or folder) when given, else `profile`'s synthetic loan book."""
    if book is not None:
        return LoanBook.load(book_folder(book))
    return synthetic_book(profile)


def moved_in_time(book: LoanBook, delta: timedelta) -> LoanBook:
    """The same book `delta` later: every instant of every table (and the cutoff) moved by it.

    Replaying a book at its own times puts the live events beside the snapshots training stored
    for the same instants, where a point-in-time read cannot tell them apart; moved after them,
    the replay is what a SACCO's live traffic is, newer than anything the model learnt from.
    """
    tables = {}
    for name, table in book.tables.items():
        moved = table.copy()
        for column in moved.columns:
            if pd.api.types.is_datetime64_any_dtype(moved[column]):
                moved[column] = moved[column] + delta
        tables[name] = moved
    oracle = book.oracle.copy() if book.oracle is not None else None
    return LoanBook(tables, book.source, book.cutoff + delta, oracle, dict(book.meta))


def latest_instant(book: LoanBook) -> pd.Timestamp:
    """The book's last recorded instant in any table (UTC)."""
    latest = pd.Timestamp(book.cutoff)
    latest = latest.tz_localize("UTC") if latest.tzinfo is None else latest
    for table in book.tables.values():
        for column in table.columns:
            if pd.api.types.is_datetime64_any_dtype(table[column]) and table[column].notna().any():
                value = pd.Timestamp(table[column].max())
                value = value.tz_localize("UTC") if value.tzinfo is None else value
                latest = max(latest, value)
    return latest
