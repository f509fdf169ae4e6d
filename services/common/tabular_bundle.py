"""Load a tabular bundle (`python -m training tabular`) and score raw rows of the original table.

A tabular bundle is a model trained on one table a SACCO supplies (a loan book with a target
column), not on Alama's feature definitions. Its manifest therefore carries the input encoding
itself: which source columns feed the model, the one-hot levels, the medians that fill numeric
gaps and the missing indicators. Training fits that encoding and serving applies it with the code
here, so the two cannot drift apart. Loading verifies every file's sha256 before anything runs.

The scoring service serves such a bundle like any other (an application carries the row in its
`attributes`), so the manifest also says how to explain the model exactly: the logistic
regression's and the scorecard's additive log-odds terms, or the native LightGBM for TreeSHAP.
Reasons are given per source column (a one-hot column's levels summed), in the column's words.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import numpy as np
import onnxruntime as ort
import pandas as pd

from services.common.decision import Calibrator, DecisionBands, Scorecard
from services.common.onnx_sessions import open_session
from services.common.protos.alama.events.v1.decisions_pb2 import ReasonCode

if TYPE_CHECKING:
    import lightgbm  # loaded with a tree bundle only: the gateway reads the encoding, not models

#: 2: a version, the explanation terms and the drift reference (format 1 cannot be served).
TABULAR_FORMAT = 2
#: Cell texts read as "no value", in training and in serving alike.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
#: The one-hot level a missing categorical value takes.
MISSING_LEVEL = "missing"


class BundleFileError(RuntimeError):
    """A file a bundle's manifest names is outside the bundle, missing, or not what was hashed."""


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

    def problem(self, value: str | None) -> str | None:
        """Why one applicant's value cannot be scored, None when it can (empty = unknown)."""
        cell = pd.Series([value], dtype=object)
        if missing_mask(cell)[0]:
            return None
        if self.kind == "numeric":
            _parsed, bad = numeric_values(cell)
            return f"is {value!r}, not a number" if bad[0] else None
        level = str(value).strip()
        if level not in self.levels:
            shown = ", ".join(repr(v) for v in self.levels if v != MISSING_LEVEL)
            return f"is {level!r}, not one of the values the model knows ({shown})"
        return None

    def describe(self, values: np.ndarray) -> str:
        """This column's value in words, from its encoded features (as a decision records them)."""
        if self.kind == "numeric":
            if len(values) > 1 and values[1] >= 0.5:
                return f"{self.column} not given"
            return f"{self.column} of {float(values[0]):,.6g}"
        for level, on in zip(self.levels, values, strict=True):
            if on >= 0.5:
                return (
                    f"{self.column} not given"
                    if level == MISSING_LEVEL
                    else (f"{self.column} is {level}")
                )
        return f"{self.column} not given"

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

    def column_problems(self, attributes: Mapping[str, str | None]) -> list[tuple[str, str]]:
        """(column, what is wrong) for everything that stops one applicant's row being scored."""
        out = []
        for c in self.columns:
            if c.column not in attributes:
                out.append((c.column, "is missing (send it empty when unknown)"))
                continue
            problem = c.problem(attributes[c.column])
            if problem is not None:
                out.append((c.column, problem))
        return out

    def problems(self, attributes: Mapping[str, str | None]) -> list[str]:
        """The same, as sentences naming `attributes.<column>`."""
        return [f"attributes.{c} {why}" for c, why in self.column_problems(attributes)]

    def spans(self) -> list[tuple[ColumnEncoding, slice]]:
        """Each source column with its features' positions in the encoded row."""
        out, start = [], 0
        for c in self.columns:
            out.append((c, slice(start, start + len(c.features))))
            start += len(c.features)
        return out

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


@dataclass(frozen=True)
class AdditiveTerms:
    """The logistic regression or the scorecard as log-odds = baseline + sum of per-feature
    contributions. linear: contribution_j = weight_j * (x_j - centre_j). steps: the scorecard's
    steps (feature, threshold, jump) summed per feature, less that sum's training mean."""

    kind: Literal["linear", "steps"]
    intercept: float
    centre: np.ndarray
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def terms(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "linear":
            return x * self.weights
        out = np.zeros_like(x, dtype=np.float64)
        for column, threshold, jump in self.steps:
            j = int(column)
            out[:, j] += jump * (x[:, j] >= threshold)
        return out

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        if self.kind == "linear":
            return (x - self.centre) * self.weights, self.intercept
        return self.terms(x) - self.centre, self.intercept + float(self.centre.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "intercept": self.intercept,
            "centre": self.centre.tolist(),
            "weights": self.weights.tolist(),
            "steps": self.steps.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], n_features: int) -> AdditiveTerms:
        kind = d["kind"]
        if kind not in ("linear", "steps"):
            raise TabularBundleError(f"unknown explanation kind {kind!r}")
        terms = cls(
            kind=cast(Literal["linear", "steps"], kind),
            intercept=float(d["intercept"]),
            centre=np.asarray(d["centre"], dtype=np.float64),
            weights=np.asarray(d.get("weights", []), dtype=np.float64),
            steps=np.asarray(d.get("steps", []), dtype=np.float64).reshape(-1, 3),
        )
        shapes_ok = terms.centre.shape == (n_features,) and (
            terms.weights.shape == (n_features,)
            if kind == "linear"
            else bool(np.all((terms.steps[:, 0] >= 0) & (terms.steps[:, 0] < n_features)))
        )
        if not shapes_ok:
            raise TabularBundleError("the explanation terms do not match the model's features")
        return terms


@dataclass
class TabularBundle:
    version: str
    path: Path
    manifest: dict[str, Any]
    encoding: TabularEncoding
    calibrator: Calibrator
    scorecard: Scorecard
    bands: DecisionBands
    session: ort.InferenceSession
    input_dtype: type[np.floating[Any]]
    additive: AdditiveTerms | None  # the logistic regression or the scorecard
    booster: lightgbm.Booster | None  # LightGBM, for exact TreeSHAP

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.encoding.feature_names

    def frame(self, rows: Rows) -> pd.DataFrame:
        if isinstance(rows, pd.DataFrame):
            return rows
        if isinstance(rows, Mapping):
            return pd.DataFrame([dict(rows)])
        return pd.DataFrame([dict(r) for r in rows])

    def encode(self, rows: Rows) -> np.ndarray:
        """Raw rows (the source columns, values as in the table or as text) -> [N, features]."""
        frame = self.frame(rows)
        if frame.empty:
            raise TabularBundleError("no rows to score")
        return self.encoding.transform(frame)

    def score_encoded(self, x: np.ndarray) -> TabularScores:
        raw = self.model_probability(x)
        pd_ = self.calibrator.apply(raw)
        return TabularScores(
            probability_of_default=pd_,
            score=self.scorecard.points(pd_),
            band=self.bands.band(pd_),
            model_probability=raw,
        )

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """[N, features] exact log-odds contributions of the (uncalibrated) model and their
        baseline: baseline + a row's sum = the model's log-odds for that row."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.feature_names))
        if self.additive is not None:
            return self.additive.contributions(x)
        assert self.booster is not None  # one of the two, by construction in the loader
        raw = np.asarray(self.booster.predict(x, pred_contrib=True))
        expected = float(raw[0, -1]) if len(raw) else 0.0
        return raw[:, :-1], expected

    def reasons(
        self, contributions: np.ndarray, values: np.ndarray, *, limit: int = 4
    ) -> list[ReasonCode]:
        """The source columns that raise this applicant's risk most, strongest first."""
        per_column = [
            (float(contributions[span].sum()), column, span)
            for column, span in self.encoding.spans()
        ]
        per_column.sort(key=lambda item: -item[0])
        return [
            ReasonCode(
                code=column.column,
                description=column.describe(values[span]),
                contribution=total,
            )
            for total, column, span in per_column[:limit]
            if total > 0
        ]

    def model_probability(self, x: np.ndarray) -> np.ndarray:
        """The ONNX model's probability of default for encoded features [N, F]."""
        out = self.session.run(["probabilities"], {"tabular": np.asarray(x, self.input_dtype)})
        return np.clip(np.asarray(out[0], dtype=np.float64)[:, 1], 0.0, 1.0)

    def score(self, rows: Rows) -> TabularScores:
        """Raw rows with the source table's columns (a DataFrame, one dict or a list of dicts)."""
        return self.score_encoded(self.encode(rows))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle_file(folder: Path, name: str, sha256: str | None = None) -> Path:
    """A file a manifest names, which must lie inside the bundle folder (no absolute path, no
    `..`, no link out of it) and, when a digest is given, match it. Every loader uses this."""
    relative = Path(name)
    if relative.is_absolute() or not name or any(part == ".." for part in relative.parts):
        raise BundleFileError(f"the manifest names {name!r}, which is not a file in the bundle")
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise BundleFileError(f"the manifest names {name!r}, which leads out of the bundle")
    if not path.is_file():
        raise BundleFileError(f"{path} is missing")
    if sha256 is not None and file_sha256(path) != sha256:
        raise BundleFileError(f"{path} does not match the manifest's sha256")
    return path


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
            " (retrain it with `python -m training tabular`)"
        )
    files = manifest["files"]
    for name, digest in files.items():
        try:
            bundle_file(folder, name, digest)
        except BundleFileError as exc:
            raise TabularBundleError(str(exc)) from None
    model = manifest["model"]
    if model["file"] not in manifest["files"]:
        raise TabularBundleError("the model file is not covered by the manifest's hashes")
    encoding = TabularEncoding.from_dict(manifest["encoding"])
    if list(encoding.feature_names) != list(manifest["features"]):
        raise TabularBundleError("the encoding does not produce the manifest's features")
    explanation = manifest["explanation"]
    additive, booster = None, None
    if explanation["kind"] == "tree":
        if explanation["file"] not in manifest["files"]:
            raise TabularBundleError("the native model is not covered by the manifest's hashes")
        import lightgbm

        native = bundle_file(folder, explanation["file"], files[explanation["file"]])
        booster = lightgbm.Booster(model_file=str(native))
        if booster.num_feature() != len(encoding.feature_names):
            raise TabularBundleError("the native LightGBM's features differ from the manifest's")
    else:
        additive = AdditiveTerms.from_dict(explanation, len(encoding.feature_names))
    session = open_session(bundle_file(folder, model["file"], files[model["file"]]), threads)
    return TabularBundle(
        version=str(manifest["version"]),
        path=folder,
        manifest=manifest,
        encoding=encoding,
        calibrator=Calibrator.from_dict(manifest["calibrator"]),
        scorecard=Scorecard.from_dict(manifest["scorecard"]),
        bands=DecisionBands.from_dict(manifest["bands"]),
        session=session,
        input_dtype=_DTYPES[model["input_dtype"]],
        additive=additive,
        booster=booster,
    )


def is_tabular_bundle(path: Path | str) -> bool:
    """Whether the bundle folder (or `current` link) holds a tabular bundle's manifest."""
    manifest_path = Path(path).resolve() / "manifest.json"
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8")).get("kind") == "tabular"
    except (OSError, ValueError, AttributeError):
        return False
