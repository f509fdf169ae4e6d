"""The held-out rows a run keeps for the gate come back exactly as written (float32 model inputs
of the whole vocabulary, outcomes, groups), and rows written for another feature vocabulary are
refused rather than scored wrongly."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from services.common import features as F
from training.held_out import SHAPES, HeldOutMismatch, HeldOutRows, read_held_out, write_held_out


def _rows(n: int = 50, seed: int = 5) -> HeldOutRows:
    rng = np.random.default_rng(seed)
    inputs = F.ModelInputs(
        **{name: rng.normal(size=(n, *shape)).astype(np.float32) for name, shape in SHAPES.items()}
    )
    return HeldOutRows(
        application_id=np.array([f"a{i}" for i in range(n)]),
        split=rng.choice(["test", "out_of_time"], n),
        y_default=rng.integers(0, 2, n),
        groups={"gender": rng.choice(["female", "male"], n)},
        inputs=inputs,
    )


def test_rows_round_trip_exactly(tmp_path: Path) -> None:
    rows = _rows()
    back = read_held_out(write_held_out(rows, tmp_path / "h.parquet"))
    for field in fields(F.ModelInputs):
        np.testing.assert_array_equal(
            getattr(back.inputs, field.name), getattr(rows.inputs, field.name)
        )
    np.testing.assert_array_equal(back.y_default, rows.y_default)
    np.testing.assert_array_equal(back.groups["gender"], rows.groups["gender"])
    np.testing.assert_array_equal(back.application_id, rows.application_id)
    np.testing.assert_array_equal(back.split, rows.split)


def test_rows_of_another_vocabulary_are_refused(tmp_path: Path) -> None:
    path = write_held_out(_rows(), tmp_path / "h.parquet")
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"alama.tabular_features": b"income,age"}), path)
    with pytest.raises(HeldOutMismatch, match="another feature vocabulary"):
        read_held_out(path)
