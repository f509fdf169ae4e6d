"""Which loan book a run plays: an imported one by name or folder, else a profile's synthetic one.

Every source reaches the simulator as the data contract's `LoanBook`, so a lender's imported
history is replayed through the running services exactly as the synthetic world is.
`training.pipeline` (models, torch) is imported only when the synthetic book must be generated,
so loading a saved book stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
