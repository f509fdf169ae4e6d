"""`python -m training tabular`: any CSV with a target column to a report and a servable bundle.

A SACCO's data team may hold nothing but one table: a row per loan, some columns, and whether it
went bad. This module reads such a file strictly (one clear error naming file, line and column for
anything it cannot use, before anything is written), cross-validates three candidates on the same
stratified folds (plain L2 logistic regression, the optbinning scorecard, LightGBM), ships the
richer model only if it beats the logistic regression by more than the noise
(`training.selection`), calibrates, maps PDs to 300-900 points, chooses approve / review / decline
cut-offs under the SACCO's business cost, audits fairness on the protected columns (never model
inputs), and writes `report.md`, `report.json` and a tabular bundle that
`services.common.tabular_bundle` loads. Everything is written to a temporary folder that is
renamed into place at the end, so a failure leaves nothing behind.

Encoders (medians, one-hot levels) are fitted inside each training fold, so the test fold never
informs its own preprocessing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightgbm
import numpy as np
import pandas as pd
from optbinning import Scorecard as OptScorecard
from sklearn.model_selection import StratifiedKFold

from services.common.decision import Calibrator, DecisionBands, Scorecard
from services.common.tabular_bundle import (
    TABULAR_FORMAT,
    AdditiveTerms,
    ColumnEncoding,
    TabularEncoding,
    category_values,
    file_sha256,
    missing_mask,
    numeric_values,
)
from training.baseline import (
    export_logistic_regression_onnx,
    export_scorecard_onnx,
    fit_logistic_regression,
    fit_logistic_scorecard,
    predict_logistic_regression,
    predict_logistic_scorecard,
    scorecard_steps,
)
from training.bundles import BUNDLES, band_distribution, promote_bundle, reference_distribution
from training.calibration import choose_calibrator, fit_calibrator
from training.credit_metrics import credit_report, information_values
from training.evaluate import fairness_report
from training.gbm import FoldGBMParams, export_gbm_onnx, fit_gbm_cv, predict_gbm
from training.realdata import feature_slug
from training.scorecard import BusinessCost, choose_bands
from training.selection import Selection, fold_ids, score_candidate, select_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COST_FILE = ROOT / "config" / "business_cost.toml"
DEFAULT_OUT = ROOT / "artifacts" / "tabular"
#: Simplest first: the logistic regression is the model every other one must beat.
CANDIDATES: tuple[str, ...] = ("logistic_regression", "logistic_scorecard", "lightgbm")
SIMPLE = "logistic_regression"
#: A CSV cell longer than this is refused: no credit attribute needs it, and a runaway quote
#: would otherwise swallow the rest of the file into one field.
FIELD_LIMIT = 131_072
#: A text column with more distinct values than this is an identifier or free text, not a
#: category; it is left out (and said so) instead of exploding into thousands of one-hot columns.
MAX_LEVELS = 50
#: Rows of the rarer outcome needed per outer fold (inner folds and calibration split them again).
MIN_PER_CLASS_PER_FOLD = 4
#: ONNX and native probabilities must agree this closely (DESIGN.md).
PARITY_TOLERANCE = 1e-5
#: The explanation terms must reproduce the model's log-odds this closely.
ADDITIVITY_TOLERANCE = 1e-6
NATIVE_FILE = "model.txt"
REFERENCE_SAMPLE_ROWS = 2000


class TabularInputError(ValueError):
    """Input the command cannot use; the message names the file and, where known, line/column."""

    def __init__(
        self, path: Path, reason: str, *, line: int | None = None, column: str | None = None
    ) -> None:
        place = ", ".join(
            part
            for part in (
                f"line {line}" if line is not None else "",
                f"column {column!r}" if column is not None else "",
            )
            if part
        )
        super().__init__(f"{path}: {place + ': ' if place else ''}{reason}")
        self.path, self.line, self.column = path, line, column


@dataclass(frozen=True)
class TabularData:
    """A validated table: model-input columns, outcome, protected columns, and what was left out."""

    path: Path
    features: pd.DataFrame  # source columns that may feed a model (strings, or floats with NaN)
    kinds: dict[str, Literal["numeric", "categorical"]]
    y: np.ndarray  # 1 = the positive (default) label
    protected: pd.DataFrame
    target: str
    positive: str
    amount_kes: np.ndarray | None  # per row, from --amount; None means the cost's typical loan
    amount_column: str | None
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is not an input


# --- reading --------------------------------------------------------------------------------------


def _decode(path: Path, raw: bytes, delimiter: str) -> str:
    """UTF-8 text (a BOM is dropped); a bad byte is reported with its line and column."""
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        line_start = body.rfind(b"\n", 0, exc.start) + 1
        prefix = body[line_start : exc.start].decode("utf-8", "replace")
        header_end = body.find(b"\n")
        header_text = body[: header_end if header_end >= 0 else len(body)].decode(
            "utf-8", "replace"
        )
        header = next(csv.reader([header_text], delimiter=delimiter), [])
        index = prefix.count(delimiter)
        column = header[index].strip() if line > 1 and index < len(header) else None
        raise TabularInputError(
            path,
            f"byte 0x{body[exc.start]:02x} is not UTF-8 text; save the file as UTF-8",
            line=line,
            column=column,
        ) from None


def _parse(path: Path, text: str, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and each row's first line number; every row as wide as the header."""
    old_limit = csv.field_size_limit()
    # Let the csv module read any field, then refuse oversized ones here, naming the column.
    csv.field_size_limit(max(old_limit, len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader, [])]
        for name in header:
            if len(name) > FIELD_LIMIT:
                raise TabularInputError(
                    path, f"a header cell is longer than {FIELD_LIMIT:,} characters", line=1
                )
        if not header or header == [""]:
            raise TabularInputError(path, "the first line (the header) is empty", line=1)
        for number, name in enumerate(header, start=1):
            if not name:
                raise TabularInputError(path, f"header cell {number} has no name", line=1)
        repeated = sorted({n for n in header if header.count(n) > 1})
        if repeated:
            raise TabularInputError(path, "the header repeats a name", line=1, column=repeated[0])
        rows: list[list[str]] = []
        lines: list[int] = []
        start = reader.line_num + 1
        for row in reader:
            if not row:  # a blank line
                start = reader.line_num + 1
                continue
            for name, cell in zip(header, row, strict=False):
                if len(cell) > FIELD_LIMIT:
                    raise TabularInputError(
                        path,
                        f"a cell of {len(cell):,} characters exceeds the {FIELD_LIMIT:,} limit",
                        line=start,
                        column=name,
                    )
            if len(row) != len(header):
                raise TabularInputError(
                    path,
                    f"{len(row)} fields where the header has {len(header)}"
                    f" (delimiter {delimiter!r})",
                    line=start,
                )
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TabularInputError(path, f"not valid CSV: {exc}", line=reader.line_num) from None
    finally:
        csv.field_size_limit(old_limit)
    return header, rows, lines


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    if len(header) == 1:
        for other in (";", "\t", "|", ","):
            if other != delimiter and other in header[0]:
                return f"; the header is one column, the file looks delimited by {other!r}"
    return ""


def _outcome(
    path: Path, values: pd.Series, lines: list[int], target: str, positive: str | None
) -> tuple[np.ndarray, str]:
    """y (1 = the positive label) after every check the target needs."""
    absent = missing_mask(values)
    if absent.any():
        row = int(np.flatnonzero(absent)[0])
        raise TabularInputError(path, "the target is empty", line=lines[row], column=target)
    text = values.astype(str).str.strip()
    seen: list[str] = []
    for row, value in enumerate(text):
        if value not in seen:
            seen.append(value)
            if len(seen) > 2:
                raise TabularInputError(
                    path,
                    f"a third target value {value!r} after {seen[0]!r} and {seen[1]!r}; "
                    "the target must have exactly two values",
                    line=lines[row],
                    column=target,
                )
    if positive is None:
        parsed, bad = numeric_values(text)
        not_binary = bad | ~np.isin(parsed, (0.0, 1.0))
        if not_binary.any():
            row = int(np.flatnonzero(not_binary)[0])
            raise TabularInputError(
                path,
                f"target value {text.iloc[row]!r} is not 0/1; pass --positive LABEL to say "
                "which value means default",
                line=lines[row],
                column=target,
            )
        y = (parsed == 1.0).astype(np.int64)
        label = "1"
    else:
        label = positive.strip()
        if label not in seen:
            raise TabularInputError(
                path,
                f"--positive {label!r} never occurs; the target's values are "
                + ", ".join(repr(v) for v in seen),
                column=target,
            )
        y = (text == label).to_numpy().astype(np.int64)
    if len(seen) < 2:
        raise TabularInputError(
            path,
            f"every row has the same target value {seen[0]!r}: one class only, "
            "a model needs both defaults and repayments",
            column=target,
        )
    return y, label


def read_table(
    path: Path | str,
    target: str,
    protected: Sequence[str] = (),
    *,
    positive: str | None = None,
    delimiter: str = ",",
    amount: str | None = None,
    folds: int = 5,
) -> TabularData:
    """Read and validate a CSV; raise `TabularInputError` for anything unusable."""
    source = Path(path)
    if not source.is_file():
        raise TabularInputError(source, "no such file")
    if len(delimiter) != 1:
        raise TabularInputError(source, f"the delimiter must be one character, not {delimiter!r}")
    raw = source.read_bytes()
    if not raw.strip():
        raise TabularInputError(source, "the file is empty")
    header, rows, lines = _parse(source, _decode(source, raw, delimiter), delimiter)
    if not rows:
        raise TabularInputError(source, "the file has a header but no data rows")
    hint = _delimiter_hint(header, delimiter)
    if target not in header:
        raise TabularInputError(
            source,
            f"no target column {target!r} in the header of {len(header)} column"
            + ("s" if len(header) > 1 else "")
            + hint,
            line=1,
            column=target,
        )
    for name in (*protected, *([amount] if amount else [])):
        if name not in header:
            raise TabularInputError(
                source, f"no column {name!r} in the header{hint}", line=1, column=name
            )
    if target in protected or amount == target:
        raise TabularInputError(
            source, "the target cannot also be protected or the amount", column=target
        )
    if amount in protected:
        raise TabularInputError(
            source, "a protected column cannot be a model input (--amount)", column=amount
        )
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    y, label = _outcome(source, frame[target], lines, target, positive)
    minority = int(min(y.sum(), y.size - y.sum()))
    if minority < MIN_PER_CLASS_PER_FOLD * folds:
        raise TabularInputError(
            source,
            f"only {minority} rows of the rarer outcome; {folds}-fold cross-validation needs at "
            f"least {MIN_PER_CLASS_PER_FOLD * folds}",
            column=target,
        )

    amount_kes = None
    if amount is not None:
        parsed, bad = numeric_values(frame[amount])
        unusable = bad | ~(parsed > 0)
        if unusable.any():
            row = int(np.flatnonzero(unusable)[0])
            raise TabularInputError(
                source,
                f"loan amount {frame[amount].iloc[row]!r} is not a positive number",
                line=lines[row],
                column=amount,
            )
        amount_kes = parsed

    kinds: dict[str, Literal["numeric", "categorical"]] = {}
    dropped: dict[str, str] = {}
    columns: dict[str, pd.Series] = {}
    for name in header:
        if name == target or name in protected:
            continue
        parsed, bad = numeric_values(frame[name])
        present = ~np.isnan(parsed) | bad
        if not present.any():
            dropped[name] = "no values"
        elif not bad.any():
            if np.unique(parsed[present]).size < 2 and present.all():
                dropped[name] = "the same value in every row"
                continue
            kinds[name] = "numeric"
            columns[name] = pd.Series(parsed)
        else:
            levels = np.unique(category_values(frame[name]))
            if levels.size < 2:
                dropped[name] = "the same value in every row"
            elif levels.size > MAX_LEVELS:
                dropped[name] = f"{levels.size} distinct texts: an identifier or free text"
            else:
                kinds[name] = "categorical"
                columns[name] = frame[name].reset_index(drop=True)
    if not columns:
        raise TabularInputError(source, "no column is left to learn from" + hint)
    return TabularData(
        path=source,
        features=pd.DataFrame(columns),
        kinds=kinds,
        y=y,
        protected=frame[list(protected)].reset_index(drop=True),
        target=target,
        positive=label,
        amount_kes=amount_kes,
        amount_column=amount,
        dropped=dropped,
    )


# --- encoding and candidates ----------------------------------------------------------------------


def fit_encoding(
    frame: pd.DataFrame, kinds: dict[str, Literal["numeric", "categorical"]]
) -> TabularEncoding:
    """Medians, missing indicators and one-hot levels learned from `frame` alone (no labels).

    Feature names follow `training.realdata.encode_features` (slugged `col`, `col__missing`,
    `col__level`), made unique if two source names slug alike.
    """
    used: set[str] = set()

    def unique(name: str) -> str:
        candidate, n = name, 2
        while candidate in used:
            candidate, n = f"{name}_{n}", n + 1
        used.add(candidate)
        return candidate

    columns: list[ColumnEncoding] = []
    for name in frame.columns:
        base = feature_slug(str(name))
        names: tuple[str, ...]
        if kinds[name] == "numeric":
            parsed, _ = numeric_values(frame[name])
            gaps = np.isnan(parsed)
            median = float(np.median(parsed[~gaps])) if (~gaps).any() else 0.0
            names = (unique(base), unique(f"{base}__missing")) if gaps.any() else (unique(base),)
            columns.append(ColumnEncoding(name, "numeric", names, median=median))
        else:
            levels = tuple(sorted(set(category_values(frame[name]).tolist())))
            names = tuple(unique(f"{base}__{feature_slug(level)}") for level in levels)
            columns.append(ColumnEncoding(name, "categorical", names, levels=levels))
    return TabularEncoding(tuple(columns))


@dataclass
class FittedCandidate:
    """One candidate model with the encoding it was fitted behind."""

    name: str
    encoding: TabularEncoding
    model: Any

    def predict_encoded(self, x: np.ndarray) -> np.ndarray:
        names = self.encoding.feature_names
        if self.name == "logistic_regression":
            return predict_logistic_regression(self.model, x)
        if self.name == "logistic_scorecard":
            return predict_logistic_scorecard(self.model, x, names)
        return predict_gbm(self.model, x)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_encoded(self.encoding.transform(frame))


def fit_candidate(
    name: str,
    frame: pd.DataFrame,
    y: np.ndarray,
    kinds: dict[str, Literal["numeric", "categorical"]],
    *,
    seed: int,
    gbm: FoldGBMParams,
) -> FittedCandidate:
    encoding = fit_encoding(frame, kinds)
    x = encoding.transform(frame)
    names = encoding.feature_names
    model: Any
    if name == "logistic_regression":
        model = fit_logistic_regression(x, y, seed=seed)
    elif name == "logistic_scorecard":
        model = fit_logistic_scorecard(x, y, names)
    elif name == "lightgbm":
        model = fit_gbm_cv(x, y, names, gbm)
    else:
        raise ValueError(f"unknown candidate {name!r}; expected one of {CANDIDATES}")
    return FittedCandidate(name, encoding, model)


# --- the run --------------------------------------------------------------------------------------


@dataclass
class TabularSettings:
    folds: int = 5
    seed: int = 7
    gbm: FoldGBMParams = field(default_factory=FoldGBMParams)


@dataclass
class TabularRun:
    """Everything the report and the bundle are written from."""

    data: TabularData
    settings: TabularSettings
    cost: BusinessCost
    folds: np.ndarray  # fold id per row
    oof: dict[str, np.ndarray]  # candidate -> out-of-fold raw PD
    selection: Selection
    calibrator: Calibrator
    calibration_scores: dict[str, float]
    calibrated_oof: (
        np.ndarray
    )  # winner's OOF PD, calibrated by a calibrator fitted on the other folds
    calibrated_scores: dict[str, Any]  # score_candidate of calibrated_oof, as a dict
    bands: DecisionBands
    band_summary: dict[str, float]
    credit: dict[str, Any]
    fairness: dict[str, dict[str, Any]]
    information_value: list[dict[str, Any]]
    final: FittedCandidate  # the winner refitted on every row
    final_pd: np.ndarray  # its calibrated PD for every row (native model)
    seconds: float


def _amounts(data: TabularData, cost: BusinessCost) -> np.ndarray:
    if data.amount_kes is not None:
        return data.amount_kes
    return np.full(data.y.size, cost.typical_loan_kes)


def _group_labels(values: pd.Series) -> np.ndarray:
    """Protected-column groups: a numeric column with many values (age) in quartile bands."""
    parsed, bad = numeric_values(values)
    present = ~np.isnan(parsed)
    if not bad.any() and present.any() and np.unique(parsed[present]).size > 10:
        edges = np.unique(np.quantile(parsed[present], [0.0, 0.25, 0.5, 0.75, 1.0]))
        index = np.clip(np.searchsorted(edges, parsed, side="right") - 1, 0, edges.size - 2)
        labels = np.array(
            [
                f"{edges[i]:g}-{edges[i + 1]:g}" if i < edges.size - 2 else f"{edges[i]:g}+"
                for i in index
            ],
            dtype=object,
        )
        return np.where(present, labels, "missing").astype(str)
    return category_values(values).astype(str)


def _cross_fitted_calibration(
    p: np.ndarray, y: np.ndarray, folds: np.ndarray, method: str
) -> np.ndarray:
    """Each fold's PDs calibrated by the chosen method fitted on the other folds' OOF PDs, so
    the reported calibration is measured on data the calibrator did not see."""
    out = np.empty_like(p)
    for fold in np.unique(folds):
        rows = folds == fold
        out[rows] = fit_calibrator(p[~rows], y[~rows], method).apply(p[rows])
    return out


def run_tabular(
    data: TabularData,
    cost: BusinessCost,
    settings: TabularSettings | None = None,
    *,
    echo: Callable[[str], None] = lambda _: None,
) -> TabularRun:
    """Cross-validate, select, calibrate, band, audit, and refit the winner on every row."""
    settings = settings or TabularSettings()
    started = time.perf_counter()
    y = data.y
    splitter = StratifiedKFold(settings.folds, shuffle=True, random_state=settings.seed)
    splits = list(splitter.split(np.zeros(y.size), y))
    folds = fold_ids([test for _, test in splits], y.size)
    oof = {name: np.empty(y.size) for name in CANDIDATES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optbinning and sklearn chatter on tiny bins
        for fold, (train, test) in enumerate(splits, start=1):
            train_frame = data.features.iloc[train].reset_index(drop=True)
            test_frame = data.features.iloc[test].reset_index(drop=True)
            for name in CANDIDATES:
                fitted = fit_candidate(
                    name, train_frame, y[train], data.kinds, seed=settings.seed, gbm=settings.gbm
                )
                oof[name][test] = fitted.predict(test_frame)
            echo(f"fold {fold}/{settings.folds} fitted ({', '.join(CANDIDATES)})")

    selection = select_model(oof, y, folds, simple=SIMPLE)
    winner = selection.winner
    calibrator, calibration_scores = choose_calibrator(oof[winner], y, seed=settings.seed)
    calibrated = _cross_fitted_calibration(oof[winner], y, folds, calibrator.method)
    amounts = _amounts(data, cost)
    bands, band_summary = choose_bands(calibrated, y, amounts, cost)
    approved = bands.band(calibrated) == "approve"
    fairness = fairness_report(
        y, approved, {name: _group_labels(data.protected[name]) for name in data.protected}
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final = fit_candidate(
            winner, data.features, y, data.kinds, seed=settings.seed, gbm=settings.gbm
        )
        scorecard_model: OptScorecard = (
            final.model
            if winner == "logistic_scorecard"
            else fit_candidate(
                "logistic_scorecard",
                data.features,
                y,
                data.kinds,
                seed=settings.seed,
                gbm=settings.gbm,
            ).model
        )
    final_pd = calibrator.apply(np.clip(final.predict(data.features), 0.0, 1.0))
    scores = score_candidate(calibrated, y, folds)
    return TabularRun(
        data=data,
        settings=settings,
        cost=cost,
        folds=folds,
        oof=oof,
        selection=selection,
        calibrator=calibrator,
        calibration_scores=calibration_scores,
        calibrated_oof=calibrated,
        calibrated_scores={
            "per_fold": scores.per_fold,
            "mean": scores.mean,
            "sd": scores.sd,
            "pooled": scores.pooled,
        },
        bands=bands,
        band_summary=band_summary,
        credit=credit_report(y, calibrated, bands, amounts, cost),
        fairness=fairness,
        information_value=information_values(scorecard_model),
        final=final,
        final_pd=final_pd,
        seconds=time.perf_counter() - started,
    )


# --- writing --------------------------------------------------------------------------------------


def _export(final: FittedCandidate, path: Path) -> str:
    """Write the ONNX model; return the dtype its `tabular` input takes."""
    names = final.encoding.feature_names
    if final.name == "logistic_regression":
        export_logistic_regression_onnx(final.model, len(names), path)
        return "float64"
    if final.name == "logistic_scorecard":
        export_scorecard_onnx(final.model, names, path)
        return "float64"
    export_gbm_onnx(final.model, path)
    return "float32"


def _onnx_probability(path: Path, x: np.ndarray, dtype: str) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = session.run(["probabilities"], {"tabular": x.astype(np.dtype(dtype))})
    return np.asarray(out[0], dtype=np.float64)[:, 1]


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None (strict JSON); numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics_block(run: TabularRun) -> dict[str, Any]:
    models: dict[str, Any] = {
        name: {"mean": s.mean, "sd": s.sd, "per_fold": s.per_fold, "pooled": s.pooled}
        for name, s in run.selection.candidates.items()
    }
    models[f"{run.selection.winner}_calibrated"] = run.calibrated_scores
    return models


def build_report(run: TabularRun, bundle: dict[str, Any]) -> dict[str, Any]:
    data = run.data
    return _json_safe(
        {
            "dataset": {
                "file": str(data.path),
                "rows": int(data.y.size),
                "default_rate": float(data.y.mean()),
                "target": data.target,
                "positive_label": data.positive,
                "input_columns": list(data.features.columns),
                "encoded_features": len(run.final.encoding.feature_names),
                "protected": list(data.protected.columns),
                "amount_column": data.amount_column,
                "dropped": data.dropped,
            },
            "folds": run.settings.folds,
            "seed": run.settings.seed,
            "models": _metrics_block(run),
            "selection": run.selection.to_dict(),
            "calibration": {"method": run.calibrator.method, **run.calibration_scores},
            "scorecard": Scorecard().to_dict(),
            "bands": run.bands.to_dict(),
            "band_summary": run.band_summary,
            "business_cost": run.cost.to_dict(),
            "credit": run.credit,
            "information_value": run.information_value,
            "fairness": run.fairness,
            "bundle": bundle,
            "seconds": run.seconds,
        }
    )


def _pm(scores: dict[str, Any], metric: str) -> str:
    return f"{scores['mean'][metric]:.4f} ± {scores['sd'][metric]:.4f}"


def report_markdown(report: dict[str, Any]) -> str:
    """The report a credit team reads: every number comes from `report.json`."""
    d = report["dataset"]
    sel = report["selection"]
    metrics = ("auc", "pr_auc", "ks", "brier", "ece")
    lines = [
        f"# Tabular model report: {Path(d['file']).name}",
        "",
        f"{d['rows']:,} rows, default rate {d['default_rate']:.3f} (target `{d['target']}`, "
        f"default = `{d['positive_label']}`), {len(d['input_columns'])} input columns "
        f"→ {d['encoded_features']} encoded features. Protected (audit only, never inputs): "
        f"{', '.join(f'`{p}`' for p in d['protected']) or 'none'}.",
    ]
    if d["dropped"]:
        lines.append(
            "Left out: " + "; ".join(f"`{c}` ({why})" for c, why in d["dropped"].items()) + "."
        )
    lines += [
        "",
        f"## {report['folds']}-fold stratified cross-validation (mean ± sd over folds)",
        "",
        "| model | " + " | ".join(m.upper().replace("_", "-") for m in metrics) + " |",
        "| --- |" + " ---: |" * len(metrics),
    ]
    for name, scores in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(_pm(scores, m) for m in metrics) + " |")
    lines += ["", "## Model selection", ""]
    if sel["winner"] == sel["simple"]:
        lines.append(
            f"**{sel['winner']} ships**: no candidate beat it beyond the noise ({sel['rule']})."
        )
    else:
        lines.append(
            f"**{sel['winner']} ships**: it beats {sel['simple']} by {sel['margin']:+.4f} "
            f"{sel['metric'].upper()} per fold (standard error {sel['standard_error']:.4f}; "
            f"{sel['rule']})."
        )
    lines.append("")
    for name, c in sel["comparisons"].items():
        verdict = "beats it" if c["beats_simple"] else "within the noise or worse"
        lines.append(
            f"- {name} vs {sel['simple']}: {c['mean_gain']:+.4f} ± {c['standard_error']:.4f} "
            f"{sel['metric'].upper()}, {verdict}"
        )
    cal = report["calibration"]
    bands = report["bands"]
    cost = report["business_cost"]
    credit = report["credit"]
    money = credit["money"]
    lines += [
        "",
        "## Calibration, scorecard and decision bands",
        "",
        f"Calibration: {cal['method']} (chosen by cross-validated Brier on the out-of-fold PDs). "
        "Scorecard: 600 points at odds 50:1, 20 points to double the odds, 300-900. "
        f"Approve below PD {bands['approve_below_pd']:.4f}, decline at or above "
        f"{bands['decline_at_or_above_pd']:.4f}, review between, chosen to minimise the "
        "business cost ("
        + ", ".join(f"{k} {v:g}" for k, v in cost.items())
        + ")"
        + (
            f" with loan amounts from `{d['amount_column']}`."
            if d["amount_column"]
            else f" with every loan assumed KES {cost['typical_loan_kes']:,.0f}."
        ),
        "",
        "## What the credit team reads (calibrated out-of-fold PDs)",
        "",
        f"PR-AUC {credit['pr_auc']:.4f} (no-skill value: the default rate "
        f"{credit['default_rate']:.4f}).",
        "",
        "| band | applications | share | defaults | bad rate |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for band, row in credit["bands"].items():
        bad = "-" if row["bad_rate"] is None else f"{row['bad_rate']:.4f}"
        lines.append(
            f"| {band} | {row['n']:,} | {row['share']:.3f} | {row['defaults']:,} | {bad} |"
        )
    lines += [
        "",
        "| cut-off | PD | defaulted, flagged | defaulted, passed | repaid, flagged "
        "| repaid, passed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cut, c in credit["confusion"].items():
        label = "approve (flagged = not approved)" if cut == "approve" else "decline"
        lines.append(
            f"| {label} | {c['threshold_pd']:.4f} | {c['defaulted_flagged']:,} | "
            f"{c['defaulted_not_flagged']:,} | {c['repaid_flagged']:,} | "
            f"{c['repaid_not_flagged']:,} |"
        )
    lines += [
        "",
        f"Expected loss on the approved book KES {money['expected_loss_kes']:,.0f} "
        f"(realised {money['realised_loss_kes']:,.0f}); profit under the business cost "
        f"KES {money['profit_kes']:,.0f} ({money['profit_per_application_kes']:,.0f} per "
        f"application), against {money['approve_all_profit_kes']:,.0f} for approving everyone "
        f"and {money['perfect_foresight_profit_kes']:,.0f} with perfect foresight.",
        "",
        "## Information value (optbinning scorecard on every row)",
        "",
        "| variable | IV | bins | strength |",
        "| --- | ---: | ---: | --- |",
    ]
    for row in report["information_value"]:
        lines.append(f"| {row['variable']} | {row['iv']:.4f} | {row['bins']} | {row['strength']} |")
    lines += ["", "## Fairness (approval on calibrated out-of-fold PDs)", ""]
    if not report["fairness"]:
        lines.append("No protected column was named (`--protected`).")
    for attribute, f in report["fairness"].items():
        di = f["disparate_impact_ratio"]
        eod = f["equal_opportunity_difference"]
        lines.append(
            f"- `{attribute}`: disparate impact {'-' if di is None else f'{di:.3f}'}, "
            f"equal-opportunity difference {'-' if eod is None else f'{eod:.3f}'}, "
            f"{'within' if f['within_targets'] else 'outside'} the targets; groups "
            + ", ".join(
                f"{g} (n {v['n']}, approval {v['approval_rate']:.3f})"
                for g, v in f["groups"].items()
            )
        )
    b = report["bundle"]
    lines += [
        "",
        "## Bundle",
        "",
        f"`bundle/`: {b['model']} refitted on every row, ONNX ({b['input_dtype']} input); "
        f"ONNX vs native probabilities differ by at most {b['parity_max_abs_diff']:.2e} "
        f"(tolerance {PARITY_TOLERANCE:g}). Took {report['seconds']:.1f} s.",
    ]
    return "\n".join(lines) + "\n"


def _explanation(final: FittedCandidate, x: np.ndarray, folder: Path) -> dict[str, Any]:
    """How serving explains the model exactly: additive log-odds terms for the logistic
    regression and the scorecard, the native booster (TreeSHAP) for LightGBM."""
    names = final.encoding.feature_names
    if final.name == "logistic_regression":
        scaler, logistic = final.model.named_steps["scale"], final.model.named_steps["logistic"]
        return AdditiveTerms(
            "linear",
            float(np.ravel(logistic.intercept_)[0]),
            centre=np.asarray(scaler.mean_, dtype=np.float64),
            weights=np.ravel(logistic.coef_) / scaler.scale_,
        ).to_dict()
    if final.name == "logistic_scorecard":
        intercept, steps = scorecard_steps(final.model, names)
        terms = AdditiveTerms(
            "steps", intercept, centre=np.zeros(len(names)), steps=np.array(steps).reshape(-1, 3)
        )
        return replace(terms, centre=terms.terms(x).mean(axis=0)).to_dict()
    booster = final.model.booster
    (folder / NATIVE_FILE).write_text(
        booster.model_to_string(num_iteration=final.model.best_iteration)
    )
    return {"kind": "tree", "file": NATIVE_FILE}


def bundle_version(run: TabularRun, model_digest: str) -> str:
    """`tabular-<file stem>-<UTC time>-<model hash>`: a folder name and a model_version."""
    stem = feature_slug(run.data.path.stem).replace("_", "-").strip("-")[:40] or "table"
    return f"tabular-{stem}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{model_digest[:8]}"


def _write_bundle(run: TabularRun, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    final = run.final
    model_file = "model.onnx"
    dtype = _export(final, folder / model_file)
    x = final.encoding.transform(run.data.features)
    native = final.predict_encoded(x)
    onnx = _onnx_probability(folder / model_file, x, dtype)
    parity = float(np.max(np.abs(onnx - native)))
    if not parity <= PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX and native {final.name} probabilities differ by {parity:.2e} "
            f"(> {PARITY_TOLERANCE:g}); no bundle written"
        )
    explanation = _explanation(final, x, folder)
    files = {model_file: file_sha256(folder / model_file)}
    if explanation["kind"] == "tree":
        files[NATIVE_FILE] = file_sha256(folder / NATIVE_FILE)
    additivity = _additivity_gap(explanation, folder, x, native)
    # the drift reference: every model input, the score and the band mix on the training rows
    points = Scorecard().points(run.final_pd)
    reference = {
        name: reference_distribution(x[:, j]) for j, name in enumerate(final.encoding.feature_names)
    }
    reference["score"] = reference_distribution(points)
    reference["band"] = band_distribution(run.bands.band(run.final_pd))
    (folder / "reference.json").write_text(json.dumps(reference))
    sample = np.arange(0, len(x), max(1, len(x) // REFERENCE_SAMPLE_ROWS))[:REFERENCE_SAMPLE_ROWS]
    frame = pd.DataFrame(x[sample], columns=list(final.encoding.feature_names))
    frame["score"] = points[sample]
    frame.to_parquet(folder / "reference_sample.parquet", index=False)
    for name in ("reference.json", "reference_sample.parquet"):
        files[name] = file_sha256(folder / name)
    selection = run.selection
    version = bundle_version(run, files[model_file])
    manifest = _json_safe(
        {
            "kind": "tabular",
            "format": TABULAR_FORMAT,
            "version": version,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": {"name": final.name, "file": model_file, "input_dtype": dtype},
            "features": list(final.encoding.feature_names),
            "input_columns": list(final.encoding.input_columns),
            "encoding": final.encoding.to_dict(),
            "explanation": explanation,
            "calibrator": run.calibrator.to_dict(),
            "scorecard": Scorecard().to_dict(),
            "bands": run.bands.to_dict(),
            "business_cost": run.cost.to_dict(),
            "reference": {"bins": "reference.json", "sample": "reference_sample.parquet"},
            "metrics": {
                "folds": selection.folds,
                "winner": selection.winner,
                "margin_over_simple": selection.margin,
                "standard_error": selection.standard_error,
                "cross_validated": {
                    name: {"mean": s.mean, "sd": s.sd} for name, s in selection.candidates.items()
                },
                "calibrated": {
                    "mean": run.calibrated_scores["mean"],
                    "sd": run.calibrated_scores["sd"],
                },
            },
            "protected": list(run.data.protected.columns),
            "target": run.data.target,
            "positive_label": run.data.positive,
            "parity": {
                "max_abs_diff": parity,
                "tolerance": PARITY_TOLERANCE,
                "explanation_log_odds_max_abs_diff": additivity,
            },
            "files": files,
        }
    )
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, allow_nan=False))
    return {
        "path": "bundle",
        "version": version,
        "model": final.name,
        "input_dtype": dtype,
        "parity_max_abs_diff": parity,
    }


def _additivity_gap(
    explanation: dict[str, Any], folder: Path, x: np.ndarray, native: np.ndarray
) -> float:
    """The explanation must add up to the model: baseline + contributions = its log-odds."""
    if explanation["kind"] == "tree":
        raw = np.asarray(
            lightgbm.Booster(model_file=str(folder / NATIVE_FILE)).predict(x, pred_contrib=True)
        )
        log_odds = raw.sum(axis=1)
    else:
        contributions, baseline = AdditiveTerms.from_dict(explanation, x.shape[1]).contributions(x)
        log_odds = baseline + contributions.sum(axis=1)
    p = np.clip(native, 1e-12, 1 - 1e-12)
    gap = float(np.max(np.abs(log_odds - np.log(p / (1 - p))), initial=0.0))
    if not gap <= ADDITIVITY_TOLERANCE:
        raise RuntimeError(
            f"the explanation terms miss the model's log-odds by {gap:.2e}; no bundle written"
        )
    return gap


def promote(out: Path, root: Path | None = None) -> str:
    """Copy `<out>/bundle` to `<root>/<version>` and point `<root>/current` at it: from then on
    the running scoring, explanation and drift services serve it."""
    bundles = root or BUNDLES
    source = out / "bundle"
    version = str(json.loads((source / "manifest.json").read_text())["version"])
    bundles.mkdir(parents=True, exist_ok=True)
    target = bundles / version
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=bundles))
        try:
            shutil.copytree(source, staging / "bundle")
            (staging / "bundle").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    promote_bundle(version, bundles)
    return version


def write_outputs(run: TabularRun, out: Path) -> Path:
    """report.md, report.json and bundle/ into `out`, all or nothing (temporary folder, rename)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        bundle = _write_bundle(run, staging / "bundle")
        report = build_report(run, bundle)
        for folder in (staging, staging / "bundle"):  # the bundle carries its own report
            (folder / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False))
            (folder / "report.md").write_text(report_markdown(report), encoding="utf-8")
        staging.chmod(0o755)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def run_command(
    csv_file: Path,
    target: str,
    protected: Sequence[str] = (),
    *,
    positive: str | None = None,
    folds: int = 5,
    out: Path | None = None,
    cost_file: Path | None = None,
    amount: str | None = None,
    delimiter: str = ",",
    seed: int = 7,
    echo: Callable[[str], None] = lambda _: None,
) -> tuple[Path, TabularRun]:
    """Everything `python -m training tabular` does; every input is checked before any work."""
    if not 2 <= folds <= 20:
        raise TabularInputError(csv_file, f"--folds must be between 2 and 20, not {folds}")
    cost_path = cost_file or DEFAULT_COST_FILE
    try:
        cost = BusinessCost.from_file(cost_path)
    except ValueError as exc:
        raise TabularInputError(cost_path, str(exc).removeprefix(f"{cost_path}: ")) from None
    target_out = out or DEFAULT_OUT / Path(csv_file).stem
    if target_out.exists() and not target_out.is_dir():
        raise TabularInputError(target_out, "--out exists and is not a folder")
    data = read_table(
        csv_file,
        target,
        protected,
        positive=positive,
        delimiter=delimiter,
        amount=amount,
        folds=folds,
    )
    echo(
        f"{csv_file}: {data.y.size:,} rows, default rate {data.y.mean():.3f}, "
        f"{data.features.shape[1]} input columns"
        + (f" ({len(data.dropped)} left out)" if data.dropped else "")
    )
    run = run_tabular(data, cost, TabularSettings(folds=folds, seed=seed), echo=echo)
    return write_outputs(run, target_out), run
