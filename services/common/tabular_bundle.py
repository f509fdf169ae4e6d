"""Load a tabular bundle (`python -m training tabular`) and score raw rows of the original table.

A tabular bundle is a model trained on one table a SACCO supplies (a loan book with a target
column), not on Alama's feature definitions. Its manifest therefore carries the input encoding
itself: which source columns feed the model, the one-hot levels, the medians that fill numeric
gaps and the missing indicators. Training fits that encoding and serving applies it with the code
here, so the two cannot drift apart. Loading verifies every file's sha256 before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import numpy as np
import onnxruntime as ort
import pandas as pd

from services.common.decision import Calibrator, DecisionBands, Scorecard

TABULAR_FORMAT = 1
#: Cell texts read as "no value", in training and in serving alike.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
#: The one-hot level a missing categorical value takes.
MISSING_LEVEL = "missing"


class TabularBundleError(RuntimeError):
    """The bundle is missing, malformed or tampered with, or rows cannot be encoded for it."""


def missing_mask(values: pd.Series) -> np.ndarray:
    """True where a cell holds no value: NaN/None or one of `MISSING_TOKENS` (any case)."""
    text = values.astype("string").str.strip().str.lower()
    return np.asarray(values.isna().to_numpy() | text.isin(MISSING_TOKENS).fillna(True).to_numpy())


def numeric_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing, mask of present cells that are not numbers)."""
    missing = missing_mask(values)
    parsed = pd.to_numeric(values.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
    return parsed, ~missing & ~np.isfinite(parsed)


def category_values(values: pd.Series) -> np.ndarray:
    """Stripped text levels, `MISSING_LEVEL` where missing."""
    text = values.astype("string").str.strip().fillna(MISSING_LEVEL)
    return np.where(missing_mask(values), MISSING_LEVEL, text.to_numpy(dtype=object))


@dataclass(frozen=True)
class ColumnEncoding:
    """How one source column becomes model features.

    numeric: `features` is (name,) or (name, name__missing); gaps take `median`.
    categorical: one feature per level in `levels` (the missing level included if it was seen);
    an unseen level sets none of them, i.e. it is scored like the reference level.
    """

    column: str
    kind: Literal["numeric", "categorical"]
    features: tuple[str, ...]
    levels: tuple[str, ...] = ()
    median: float = 0.0

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.kind == "numeric":
            parsed, bad = numeric_values(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise TabularBundleError(
                    f"row {row}, column {self.column!r}: {values.iloc[row]!r} is not a number"
                )
            filled = np.where(np.isnan(parsed), self.median, parsed)
            if len(self.features) == 1:
                return filled.reshape(-1, 1)
            return np.column_stack([filled, np.isnan(parsed).astype(np.float64)])
        levels = category_values(values)
        return np.column_stack([(levels == level).astype(np.float64) for level in self.levels])

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "features": list(self.features),
            "levels": list(self.levels),
            "median": float(self.median),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnEncoding:
        kind = d["kind"]
        if kind not in ("numeric", "categorical"):
            raise TabularBundleError(f"unknown column kind {kind!r}")
        return cls(
            column=str(d["column"]),
            kind=cast(Literal["numeric", "categorical"], kind),
            features=tuple(str(f) for f in d["features"]),
            levels=tuple(str(v) for v in d.get("levels", ())),
            median=float(d.get("median", 0.0)),
        )


@dataclass(frozen=True)
class TabularEncoding:
    """Source columns to the model's float64 feature matrix, in manifest order."""

    columns: tuple[ColumnEncoding, ...] = field(default_factory=tuple)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f for c in self.columns for f in c.features)

    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """[N, features] float64; extra columns are ignored, an absent one is an error."""
        absent = [c for c in self.input_columns if c not in frame.columns]
        if absent:
            raise TabularBundleError(f"rows lack the column(s) {absent}")
        if not self.columns:
            return np.zeros((len(frame), 0))
        blocks = [c.encode(frame[c.column].reset_index(drop=True)) for c in self.columns]
        return np.hstack(blocks).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TabularEncoding:
        return cls(tuple(ColumnEncoding.from_dict(c) for c in d["columns"]))


@dataclass(frozen=True)
class TabularScores:
    probability_of_default: np.ndarray  # calibrated
    score: np.ndarray  # 300-900 points
    band: np.ndarray  # "approve" / "review" / "decline"
    model_probability: np.ndarray  # the model's own output, before calibration


Rows: TypeAlias = pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]


@dataclass
class TabularBundle:
    path: Path
    manifest: dict[str, Any]
    encoding: TabularEncoding
    calibrator: Calibrator
    scorecard: Scorecard
    bands: DecisionBands
    session: ort.InferenceSession
    input_dtype: type[np.floating[Any]]

    def model_probability(self, x: np.ndarray) -> np.ndarray:
        """The ONNX model's probability of default for encoded features [N, F]."""
        out = self.session.run(["probabilities"], {"tabular": np.asarray(x, self.input_dtype)})
        return np.clip(np.asarray(out[0], dtype=np.float64)[:, 1], 0.0, 1.0)

    def score(self, rows: Rows) -> TabularScores:
        """Raw rows with the source table's columns (a DataFrame, one dict or a list of dicts)."""
        if isinstance(rows, pd.DataFrame):
            frame = rows
        elif isinstance(rows, Mapping):
            frame = pd.DataFrame([dict(rows)])
        else:
            frame = pd.DataFrame([dict(r) for r in rows])
        if frame.empty:
            raise TabularBundleError("no rows to score")
        raw = self.model_probability(self.encoding.transform(frame))
        pd_ = self.calibrator.apply(raw)
        return TabularScores(
            probability_of_default=pd_,
            score=self.scorecard.points(pd_),
            band=self.bands.band(pd_),
            model_probability=raw,
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_DTYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float64": np.float64}


def load_tabular_bundle(path: Path | str, *, threads: int = 1) -> TabularBundle:
    """Load and verify a tabular bundle folder (the one holding `manifest.json`)."""
    folder = Path(path).resolve()
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise TabularBundleError(f"no tabular bundle at {path} (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TabularBundleError(f"{manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("kind") != "tabular" or manifest.get("format") != TABULAR_FORMAT:
        raise TabularBundleError(
            f"{manifest_path} is not a tabular bundle of format {TABULAR_FORMAT}"
        )
    for name, digest in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise TabularBundleError(f"{file} is missing")
        if file_sha256(file) != digest:
            raise TabularBundleError(f"{file} does not match the manifest's sha256")
    model = manifest["model"]
    if model["file"] not in manifest["files"]:
        raise TabularBundleError("the model file is not covered by the manifest's hashes")
    encoding = TabularEncoding.from_dict(manifest["encoding"])
    if list(encoding.feature_names) != list(manifest["features"]):
        raise TabularBundleError("the encoding does not produce the manifest's features")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(folder / model["file"]), options, providers=["CPUExecutionProvider"]
    )
    return TabularBundle(
        path=folder,
        manifest=manifest,
        encoding=encoding,
        calibrator=Calibrator.from_dict(manifest["calibrator"]),
        scorecard=Scorecard.from_dict(manifest["scorecard"]),
        bands=DecisionBands.from_dict(manifest["bands"]),
        session=session,
        input_dtype=_DTYPES[model["input_dtype"]],
    )
