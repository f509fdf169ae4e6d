"""Bounded memory must not change results: a world in parts, a loan book in parts and feature
snapshots in member chunks give exactly what the whole would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.common.members import DEV_TENANT, member_key
from training import feature_tables
from training.contract import LoanBook
from training.partitions import PartitionedLoanBook, load_book, member_chunks, write_parts
from training.sources.synthetic import loan_book_from_world, world_cutoff
from training.world import World, concat_worlds, generate_world, generate_world_parts

N = 1_500
SEED = 5
PART = 600  # three parts: 500 members each
#: The tiny profile's world (3,000 members, seed 11) as it was before worlds had parts: the
#: tiny and quick runs, and every number measured on them, stay valid. Drawn bit for bit on the
#: machines it was first drawn on; to six significant digits on one without AVX-512 (AVX2 only),
#: whose floats differ from theirs in the last bits.
TINY_FINGERPRINT = "aacb801d8e67bfc39cb3864ea57b3439cccb2262f0979041b974d90f2427f627"
TINY_FINGERPRINT_6_DIGITS = "5fbba1fcc8a60b9ff637b906b48a7a44b9285c02f2423c3acb2a2a5cf7b91633"


@pytest.fixture(scope="module")
def parts() -> list[World]:
    return list(generate_world_parts(N, SEED, part_members=PART))


@pytest.fixture(scope="module")
def cutoff(parts: list[World]) -> pd.Timestamp:
    return max(world_cutoff(part) for part in parts)


@pytest.fixture(scope="module")
def whole_book(parts: list[World], cutoff: pd.Timestamp) -> LoanBook:
    return loan_book_from_world(concat_worlds(parts), cutoff=cutoff)


@pytest.fixture(scope="module")
def whole_tables(whole_book: LoanBook) -> dict[str, pd.DataFrame]:
    """The whole book's feature snapshots in one chunk, what every chunked way must give (the
    comparisons sort copies; nothing changes these)."""
    return feature_tables.build_tables(whole_book, members_per_chunk=10**9)


def assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    """Equal up to row order (the offline store is a table, not a list)."""
    assert a.keys() == b.keys()
    for name in a:
        left, right = (
            t.sort_values(["member_id", "event_timestamp"], kind="stable").reset_index(drop=True)
            for t in (a[name], b[name])
        )
        assert list(left.columns) == list(right.columns), name
        assert len(left) == len(right) > 0, name
        for column in left.columns:
            if left[column].dtype == object and column != "member_id":  # sequences
                np.testing.assert_array_equal(
                    np.stack(left[column].to_numpy()), np.stack(right[column].to_numpy())
                )
            else:
                pd.testing.assert_series_equal(left[column], right[column], obj=f"{name}.{column}")


def test_a_world_of_one_part_is_drawn_as_before() -> None:
    world = generate_world(3_000, 11)
    exact = world.fingerprint() == TINY_FINGERPRINT
    assert exact or world.fingerprint(significant=6) == TINY_FINGERPRINT_6_DIGITS


def test_parts_share_no_id_and_number_members_in_order(parts: list[World]) -> None:
    assert [len(p.members) for p in parts] == [500, 500, 500]
    world = concat_worlds(parts)
    ids = world.members["member_id"]
    assert ids.tolist() == [f"M{i:07d}" for i in range(1, N + 1)]
    for table, column in (
        ("members", "national_id"),
        ("members", "phone_number"),
        ("applications", "application_id"),
    ):
        assert world.tables()[table][column].is_unique, column
    transactions = world.mobile_money["transaction_id"].to_numpy()
    np.testing.assert_array_equal(transactions, np.arange(1, len(transactions) + 1))
    owners = world.repayments.groupby("loan_id", observed=True)["member_id"].nunique()
    assert owners.max() == 1
    # each part stands alone: its rows belong to its own members
    for part in parts:
        own = set(part.members["member_id"])
        assert set(part.mobile_money["member_id"].astype(str)) <= own
        assert set(part.repayments["member_id"].astype(str)) <= own


def test_parts_are_deterministic() -> None:
    again = list(generate_world_parts(N, SEED, part_members=PART))
    assert [p.fingerprint() for p in again] == [
        p.fingerprint() for p in generate_world_parts(N, SEED, part_members=PART)
    ]


def test_feature_snapshots_in_member_chunks_equal_the_whole_book(
    whole_book: LoanBook, whole_tables: dict[str, pd.DataFrame]
) -> None:
    whole = whole_tables
    chunked = feature_tables.build_tables(whole_book, members_per_chunk=170)
    assert_same_tables(whole, chunked)
    chunks = list(member_chunks(whole_book, 170))
    assert [len(c.members) for c in chunks] == [170] * 8 + [140]
    # the online store is written in the same chunks, from the members table alone, under the
    # keys the offline rows carry (the book's tenant's members)
    assert list(feature_tables.member_id_chunks(whole_book, 170)) == [
        [member_key(DEV_TENANT, m) for m in c.members["member_id"].astype(str)] for c in chunks
    ]
    for chunk in chunks:  # every row of a chunk is one of its members'
        own = set(chunk.members["member_id"])
        for name in ("applications", "profile_snapshots", "repayments", "mobile_money", "loans"):
            assert set(chunk.table(name)["member_id"]) <= own, name
    assert sum(len(c.mobile_money) for c in chunks) == len(whole_book.mobile_money)


def test_a_book_in_parts_reads_as_the_whole_book(
    parts: list[World],
    cutoff: pd.Timestamp,
    whole_book: LoanBook,
    whole_tables: dict[str, pd.DataFrame],
    tmp_path: Path,
) -> None:
    write_parts(
        (loan_book_from_world(part, cutoff=cutoff) for part in parts),
        tmp_path,
        source="synthetic",
        cutoff=cutoff,
        meta={"world_seed": SEED},
    )
    book = load_book(tmp_path)
    assert isinstance(book, PartitionedLoanBook) and len(book.parts) == 3
    pd.testing.assert_frame_equal(book.members, whole_book.members)
    pd.testing.assert_frame_equal(book.labelled, whole_book.labelled)
    assert book.oracle is not None and whole_book.oracle is not None
    pd.testing.assert_frame_equal(book.oracle, whole_book.oracle)
    pd.testing.assert_frame_equal(book.table("loans"), whole_book.table("loans"))
    assert book.has("mobile_money") and not book.has("bureau")
    assert book.rows["mobile_money"] == len(whole_book.mobile_money)
    assert book.fingerprint() == load_book(tmp_path).fingerprint() != ""
    assert book.cutoff == whole_book.cutoff and book.meta == {"world_seed": SEED}
    assert list(feature_tables.member_id_chunks(book, 200)) == [
        [member_key(DEV_TENANT, m) for m in c.members["member_id"].astype(str)]
        for c in member_chunks(book, 200)
    ]
    assert_same_tables(
        whole_tables,
        feature_tables.build_tables(book, members_per_chunk=200),  # parts split further
    )


def test_the_cli_defaults_match_the_pipelines() -> None:
    from training import __main__ as cli

    assert cli.MEMBERS_PER_CHUNK == feature_tables.MEMBERS_PER_CHUNK
    assert cli.APPLICATIONS_PER_QUERY == feature_tables.APPLICATIONS_PER_QUERY
    assert cli.LOAD_WORKERS == feature_tables.LOAD_WORKERS


def test_a_profile_larger_than_a_part_trains_from_a_book_in_parts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    whole_book: LoanBook,
    whole_tables: dict[str, pd.DataFrame],
) -> None:
    from training import paths, pipeline, world
    from training.profiles import Profile

    monkeypatch.setattr(world, "WORLD_PART_MEMBERS", PART)
    monkeypatch.setattr(paths, "ARTIFACTS", tmp_path)
    monkeypatch.setattr(paths, "LOAN_BOOKS", tmp_path / "loanbooks")
    profile = Profile(
        "parts", N, SEED, gbm_trials=1, gbm_timeout_seconds=1, lstm_epochs=1, lstm_hidden=4
    )
    lines: list[str] = []
    book = pipeline.synthetic_book(profile, echo=lines.append)
    assert isinstance(book, PartitionedLoanBook) and len(book.parts) == 3
    assert (tmp_path / "world" / "parts" / "part-00002" / "mobile_money.parquet").exists()
    pd.testing.assert_frame_equal(book.labelled, whole_book.labelled)
    assert book.cutoff == whole_book.cutoff
    assert_same_tables(
        whole_tables,
        feature_tables.build_tables(book),
    )
    again = pipeline.synthetic_book(profile, echo=lines.append)  # reused, not regenerated
    assert again.fingerprint() == book.fingerprint()
    assert any(line.startswith("reusing the loan book") for line in lines)


def test_a_floats_last_bit_changes_the_exact_fingerprint_only(parts: list[World]) -> None:
    world = parts[0]
    before = (world.fingerprint(), world.fingerprint(significant=6))
    amounts = world.mobile_money["amount_kes"].to_numpy(copy=True)
    i = int(np.flatnonzero(amounts)[0])
    amounts[i] = np.nextafter(amounts[i], np.inf)  # what another CPU's exp or log can give
    changed = World(**{name: getattr(world, name) for name in World.TABLES}, seed=world.seed)
    changed.mobile_money = world.mobile_money.assign(amount_kes=amounts)
    assert changed.fingerprint() != before[0]
    assert changed.fingerprint(significant=6) == before[1]
    amounts[i] *= 1.001  # a real difference still shows
    changed.mobile_money = world.mobile_money.assign(amount_kes=amounts)
    assert changed.fingerprint(significant=6) != before[1]
