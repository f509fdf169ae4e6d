"""A small drift reference built from a seeded random sample, written as a bundle would be."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.drift.reference import DriftReference, load_reference

SUBJECTS = ("income", "tenure", "score")
VERSION = "unit-20260101000000-deadbeef"


def reference_bins(values: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """The same rule as training/export.py: inner quantile edges, share per bin."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "proportions": (counts / counts.sum()).tolist()}


def reference_sample(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n),
            "tenure": rng.integers(1, 120, n).astype(float),
            "score": rng.normal(600, 60, n),
        }
    )


def write_bundle(folder: Path) -> Path:
    sample = reference_sample(5000)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reference.json").write_text(
        json.dumps({name: reference_bins(sample[name].to_numpy()) for name in SUBJECTS})
    )
    sample.iloc[:2000].to_parquet(folder / "reference_sample.parquet", index=False)
    digests = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("reference.json", "reference_sample.parquet")
    }
    (folder / "manifest.json").write_text(
        json.dumps({"version": VERSION, "reference": {"sha256": digests}})
    )
    return folder


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle")


@pytest.fixture
def reference(bundle_dir: Path) -> DriftReference:
    return load_reference(bundle_dir)
