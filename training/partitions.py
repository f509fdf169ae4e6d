"""Loan books too large for memory: member parts on disk, and member chunks of any book.

A book of a million members has about 200 million mobile-money rows; it is stored as parts,
each a complete loan book of some members (`part-00000/`, ...), beside a `loanbook.json` that
describes the whole. `PartitionedLoanBook` keeps only the members, the applications and the
oracle in memory. Whatever reads the big tables (feature snapshots) goes through
`member_chunks`, which gives any book, in memory or in parts, as loan books of at most so many
members each: one code path for every source.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from training.contract import CONTRACT_VERSION, TABLE_SPECS, LoanBook, read_table

PART_PREFIX = "part-"


def part_name(index: int) -> str:
    return f"{PART_PREFIX}{index:05d}"


@dataclass(eq=False)
class PartitionedLoanBook(LoanBook):
    """A loan book stored as member parts; `tables` holds members and applications only."""

    parts: tuple[Path, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)
    stored_fingerprint: str = ""

    IN_MEMORY: tuple[str, ...] = ("members", "applications")

    def table(self, name: str) -> pd.DataFrame:
        """A whole table; a big one is read from every part (only for books that fit)."""
        if name in self.tables:
            return self.tables[name]
        if self.rows.get(name, 0) == 0:
            return super().table(name)
        return pd.concat(
            [read_table(part / f"{name}.parquet") for part in self.parts], ignore_index=True
        )

    def has(self, name: str) -> bool:
        return self.rows.get(name, 0) > 0

    def fingerprint(self) -> str:
        """sha256 over the parts' own fingerprints, in order (recorded when the parts were
        written; reading 200 million rows again to hash them would take longer than training)."""
        return self.stored_fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "contract_version": CONTRACT_VERSION,
            "source": self.source,
            "cutoff": self.cutoff.isoformat(),
            "rows": self.rows,
            "fingerprint": self.stored_fingerprint,
            "parts": [part.name for part in self.parts],
            **self.meta,
        }

    def save(self, folder: Path) -> None:
        """The parts are written by `write_parts`; this writes the description beside them."""
        (folder / "loanbook.json").write_text(json.dumps(self.describe(), indent=2) + "\n")


def write_parts(
    books: Iterator[LoanBook],
    folder: Path,
    *,
    source: str,
    cutoff: pd.Timestamp,
    meta: dict[str, Any] | None = None,
) -> PartitionedLoanBook:
    """Save each book of `books` (disjoint members, in order) as a part of one book in `folder`."""
    saved = []
    for index, book in enumerate(books):
        saved.append(save_part(book, folder / part_name(index)))
        del book  # before the generator makes the next part: one part in memory at a time
    return describe_parts(folder, saved, source=source, cutoff=cutoff, meta=meta)


@dataclass(frozen=True)
class SavedPart:
    folder: Path
    fingerprint: str
    rows: dict[str, int]


def describe_parts(
    folder: Path,
    saved: list[SavedPart],
    *,
    source: str,
    cutoff: pd.Timestamp,
    meta: dict[str, Any] | None = None,
) -> PartitionedLoanBook:
    """Write the loanbook.json of a book whose parts are saved (in member order)."""
    digest = hashlib.sha256()
    rows: dict[str, int] = {}
    for part in saved:
        digest.update(part.fingerprint.encode())
        for name, count in part.rows.items():
            rows[name] = rows.get(name, 0) + count
    book = PartitionedLoanBook(
        tables={},
        source=source,
        cutoff=cutoff,
        meta=meta or {},
        parts=tuple(part.folder for part in saved),
        rows=rows,
        stored_fingerprint=digest.hexdigest(),
    )
    book.save(folder)
    return load_partitioned(folder)


def save_part(book: LoanBook, folder: Path) -> SavedPart:
    return SavedPart(
        folder, _save_part(book, folder), {name: len(t) for name, t in book.tables.items()}
    )


def _save_part(book: LoanBook, folder: Path) -> str:
    """A part as `LoanBook.save` writes a book, with a fingerprint over each column's values in
    its own type (the contract's fingerprint turns every value into a Python object first:
    two minutes and 8 GB for 50,000 members' ten million mobile-money rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for name in sorted(book.tables):
        table = book.tables[name]
        table.to_parquet(folder / f"{name}.parquet", index=False)
        digest.update(name.encode())
        for column in table.columns:
            digest.update(column.encode())
            digest.update(_column_hash(table[column]))
    if book.oracle is not None:
        book.oracle.to_parquet(folder / "oracle.parquet", index=False)
    info = {
        "contract_version": CONTRACT_VERSION,
        "source": book.source,
        "cutoff": book.cutoff.isoformat(),
        "rows": {name: len(t) for name, t in book.tables.items()},
        "fingerprint": digest.hexdigest(),
    }
    (folder / "loanbook.json").write_text(json.dumps(info, indent=2) + "\n")
    return str(info["fingerprint"])


def _column_hash(values: pd.Series) -> bytes:
    """Row hashes of a column; a nullable number column by its numbers and its missing mask
    (pandas hashes those row by row: half a minute for ten million rows)."""
    if isinstance(values.dtype, pd.Int64Dtype | pd.Float64Dtype):
        missing = values.isna().to_numpy()
        numbers = values.to_numpy(dtype=str(values.dtype).lower(), na_value=0)
        return pd.util.hash_array(numbers).tobytes() + np.packbits(missing).tobytes()
    return pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes()


def read_part(folder: Path) -> LoanBook:
    """A part as `LoanBook.load` reads a book, with member ids and transaction kinds as
    categories (ten million rows of them as Python strings would take gigabytes)."""
    info = json.loads((folder / "loanbook.json").read_text())
    tables = {}
    for name in TABLE_SPECS:
        path = folder / f"{name}.parquet"
        if not path.exists():
            continue
        names = pq.read_schema(path).names
        table = pq.read_table(path, read_dictionary=[c for c in _CODED if c in names])
        tables[name] = table.to_pandas(types_mapper=_NULLABLE.get)
    return LoanBook(tables=tables, source=str(info["source"]), cutoff=pd.Timestamp(info["cutoff"]))


_CODED = ("member_id", "kind")
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}


def load_partitioned(folder: Path) -> PartitionedLoanBook:
    info = json.loads((folder / "loanbook.json").read_text())
    if info.get("contract_version") != CONTRACT_VERSION:
        raise ValueError(
            f"{folder} holds contract version {info.get('contract_version')}, "
            f"this code reads {CONTRACT_VERSION}; build it again"
        )
    parts = tuple(folder / name for name in info["parts"])
    tables = {  # only the small tables are read
        name: pd.concat([read_table(part / f"{name}.parquet") for part in parts], ignore_index=True)
        for name in PartitionedLoanBook.IN_MEMORY
    }
    oracles = [
        pd.read_parquet(part / "oracle.parquet")
        for part in parts
        if (part / "oracle.parquet").exists()
    ]
    meta = {
        k: v
        for k, v in info.items()
        if k not in {"contract_version", "source", "cutoff", "rows", "fingerprint", "parts"}
    }
    return PartitionedLoanBook(
        tables=tables,
        source=str(info["source"]),
        cutoff=pd.Timestamp(info["cutoff"]),
        oracle=pd.concat(oracles, ignore_index=True) if oracles else None,
        meta=meta,
        parts=parts,
        rows={k: int(v) for k, v in info["rows"].items()},
        stored_fingerprint=str(info["fingerprint"]),
    )


def load_book(folder: Path) -> LoanBook:
    """The loan book in `folder`, whole or in parts."""
    info = json.loads((folder / "loanbook.json").read_text())
    return load_partitioned(folder) if "parts" in info else LoanBook.load(folder)


def member_chunks(book: LoanBook, members_per_chunk: int) -> Iterator[LoanBook]:
    """The book as loan books of at most `members_per_chunk` members each (every table's rows
    of those members; a table without a member column, such as guarantors, goes whole with
    each chunk). A book in parts is read one part at a time."""
    if members_per_chunk < 1:
        raise ValueError("members_per_chunk must be positive")
    if isinstance(book, PartitionedLoanBook):
        for part in book.parts:
            yield from slices(read_part(part), members_per_chunk)
    else:
        yield from slices(book, members_per_chunk)


def member_pieces(book: LoanBook, members_per_chunk: int) -> Iterator[Path | LoanBook]:
    """What `member_chunks` reads, as pieces another process can take: a part's folder (it
    reads and slices the part itself), or a chunk of a book held in memory."""
    if isinstance(book, PartitionedLoanBook):
        yield from book.parts
    else:
        yield from slices(book, members_per_chunk)


def count_pieces(book: LoanBook, members_per_chunk: int) -> int:
    if isinstance(book, PartitionedLoanBook):
        return len(book.parts)
    return max(1, -(-len(book.members) // members_per_chunk))


def piece_chunks(piece: Path | LoanBook, members_per_chunk: int) -> Iterator[LoanBook]:
    """The member chunks of one piece of `member_pieces`."""
    yield from slices(read_part(piece) if isinstance(piece, Path) else piece, members_per_chunk)


def slices(book: LoanBook, size: int) -> Iterator[LoanBook]:
    """A book in memory as chunks of at most `size` of its members (itself if it has fewer)."""
    ids = pd.Index(book.members["member_id"].astype(str))
    if len(ids) <= size:
        yield book
        return
    # each table's rows grouped by chunk once (not one scan of 200M rows per chunk)
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, table in book.tables.items():
        column = _member_column(name)
        if column is None or column not in table.columns:
            continue
        keys = table[column]
        if isinstance(keys.dtype, pd.CategoricalDtype):  # map the categories once
            position = ids.get_indexer(keys.cat.categories.astype(str))
            raw = keys.cat.codes.to_numpy()
            member = np.where(raw >= 0, position[raw], -1)
        else:
            member = ids.get_indexer(np.asarray(keys.astype(str)))
        chunk = np.where(member >= 0, member // size, -1)
        order = np.argsort(chunk, kind="stable")
        groups[name] = (order, np.searchsorted(chunk[order], np.arange(len(ids) // size + 2)))
    for c in range(-(-len(ids) // size)):
        tables = {}
        for name, table in book.tables.items():
            if name not in groups:
                tables[name] = table
                continue
            order, bounds = groups[name]
            rows = np.sort(order[bounds[c] : bounds[c + 1]])
            tables[name] = table.iloc[rows].reset_index(drop=True)
        yield LoanBook(
            tables=tables, source=book.source, cutoff=book.cutoff, oracle=None, meta=book.meta
        )


def _member_column(name: str) -> str | None:
    columns = TABLE_SPECS[name].columns if name in TABLE_SPECS else {}
    return "member_id" if "member_id" in columns else None
