"""Anchors and settings: sealing, what `check_anchors` says for each way the sources can differ."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.audit.anchors import (
    AnchorFile,
    AnchorRecord,
    anchor_sealed,
    check_anchors,
    seal_anchor,
)
from services.audit.chain import ChainHead, VerifyResult
from services.audit.settings import AuditSettings, dsn_as

KEY = b"unit-test-mac-key"
AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def anchor(seq: int, row_hash: str = "", chain: str = "audit", key: bytes = KEY) -> AnchorRecord:
    return seal_anchor(key, chain, ChainHead(seq, row_hash or f"h{seq}"), AT)


def chain(start: int, head: int, ok: bool = True) -> VerifyResult:
    return VerifyResult(
        ok, head - start, start=ChainHead(start, f"h{start}"), head=ChainHead(head, f"h{head}")
    )


def problems(
    file: list[AnchorRecord], topic: list[AnchorRecord], result: VerifyResult
) -> list[str]:
    stored = {seq: f"h{seq}" for seq in range(result.start.seq + 1, result.head.seq + 1)}
    return check_anchors(
        key=KEY,
        chain_name="audit",
        file_anchors=file,
        topic_anchors=topic,
        chain=result,
        stored=stored,
    )


def test_anchors_round_trip_and_are_sealed_with_the_key_only() -> None:
    record = anchor(7)
    assert AnchorRecord.from_json(record.to_json()) == record
    assert anchor_sealed(KEY, record)
    assert not anchor_sealed(b"another", record)
    assert not anchor_sealed(KEY, AnchorRecord("audit", 8, "h7", AT, record.mac))


def test_agreeing_anchors_within_the_chain_pass() -> None:
    assert problems([anchor(3), anchor(5)], [anchor(5)], chain(0, 9)) == []
    assert problems([], [], chain(0, 0)) == []  # an empty, never anchored chain


def test_each_disagreement_is_named() -> None:
    assert "chain ends at seq 4" in " ".join(problems([anchor(6)], [anchor(6)], chain(0, 4)))
    assert "differs from its anchor" in " ".join(
        problems([anchor(3, "forged")], [anchor(3, "forged")], chain(0, 9))
    )
    assert "not sealed" in " ".join(problems([anchor(5, key=b"x")], [anchor(5)], chain(0, 9)))
    assert "belongs to chain" in " ".join(problems([anchor(5, chain="other")], [], chain(0, 9)))
    assert "newest anchors disagree" in " ".join(problems([anchor(3)], [anchor(5)], chain(0, 9)))
    assert "file holds no anchor" in " ".join(problems([], [anchor(5)], chain(0, 9)))
    assert "no anchor in the file or on the topic" in " ".join(problems([], [], chain(0, 9)))


def test_anchors_in_a_pruned_prefix_are_accepted() -> None:
    assert problems([anchor(2), anchor(6)], [anchor(6)], chain(4, 9)) == []
    assert "differs" in " ".join(problems([anchor(4, "x")], [anchor(4, "x")], chain(4, 9)))


def test_anchor_file_appends_and_names_edited_lines(tmp_path: Path) -> None:
    file = AnchorFile(tmp_path / "anchors" / "audit.jsonl")
    assert file.read() == ([], [])
    file.append(anchor(1))
    file.append(anchor(2))
    with file.path.open("a") as handle:
        handle.write("{not json\n")
    anchors, bad = file.read()
    assert [a.seq for a in anchors] == [1, 2]
    assert len(bad) == 1 and "line 3" in bad[0]


def test_settings_keep_retention_above_its_minimum_and_log_in_as_their_roles() -> None:
    with pytest.raises(ValueError, match="retention_min_days"):
        AuditSettings(retention_min_days=0)
    with pytest.raises(ValueError, match="below retention_min_days"):
        AuditSettings(retention_days=10, retention_min_days=30)
    settings = AuditSettings()
    assert settings.writer_dsn.startswith(f"postgresql://{settings.writer_user}:")
    assert settings.owner_user != settings.writer_user
    assert settings.mac_key.get_secret_value().startswith("dev-only-")
    assert dsn_as("postgresql://a:b@db:5432/x?sslmode=require", "u", "p@ss/") == (
        "postgresql://u:p%40ss%2F@db:5432/x?sslmode=require"
    )
