"""Load a model bundle and turn model inputs into decisions; shared by scoring and explanation.

A bundle (`artifacts/bundles/<version>/`, written by `training`) is self-describing: its manifest
names the features it was trained on (a subset of this code's feature vocabulary: training drops
what a source cannot inform), whether it has an LSTM (not when the source has no sequences), the
ensemble weights, calibrator, scorecard and bands. The bundle owns every model file: loading
checks the format and every file's hash, once, and loads the ONNX graphs and the native GBM that
both scoring and explanation use for TreeSHAP, so a mismatched bundle fails at start-up rather
than scoring wrongly. Callers always hand in the whole vocabulary (`features.model_inputs`); the
bundle picks its columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnxruntime as ort

from services.common import features as F
from services.common.decision import Calibrator, DecisionBands, EnsembleWeights, Scorecard
from services.common.onnx_sessions import open_session
from services.common.tabular_bundle import (
    BundleFileError,
    TabularBundle,
    bundle_file,
    is_tabular_bundle,
    load_tabular_bundle,
)

SUPPORTED_FORMATS = frozenset({1})


class BundleError(RuntimeError):
    """The bundle is missing, malformed, tampered with, or built for other features."""


@dataclass(frozen=True)
class Scores:
    probability_of_default: np.ndarray  # calibrated ensemble PD
    score: np.ndarray  # 300-900 points
    band: np.ndarray  # "approve" / "review" / "decline"
    gbm_probability: np.ndarray
    lstm_probability: np.ndarray
    repayment_attention: np.ndarray  # [N, 24]
    mobile_money_attention: np.ndarray  # [N, 13]


@dataclass
class ModelBundle:
    version: str
    path: Path
    manifest: dict[str, Any]
    weights: EnsembleWeights
    calibrator: Calibrator
    scorecard: Scorecard
    bands: DecisionBands
    tabular_model: ort.InferenceSession  # the GBM, or the plain logistic regression
    kind: str  # "lightgbm" or "logistic_regression": what the tabular model is
    lstm: ort.InferenceSession | None
    booster: lightgbm.Booster | None  # the native GBM, for exact TreeSHAP contributions
    linear: LinearTerms | None  # the logistic regression's terms, for its exact contributions
    feature_names: tuple[str, ...]  # what the models read, in their order
    columns: np.ndarray  # each of those features' position in features.TABULAR_FEATURES

    def score(self, inputs: F.ModelInputs) -> Scores:
        """Both ONNX models, the ensemble, calibration, points and band, for a batch."""
        tabular = np.ascontiguousarray(inputs.tabular[:, self.columns])
        if self.tabular_model.get_inputs()[0].type == "tensor(double)":
            tabular = tabular.astype(np.float64)
        p_gbm = np.asarray(self.tabular_model.run(None, {"tabular": tabular})[1])[:, 1]
        p_gbm = p_gbm.astype(np.float64)
        n = len(p_gbm)
        if self.lstm is None:
            p_lstm = np.full(n, 0.5)
            rep_att = np.zeros((n, F.REPAYMENT_MONTHS), dtype=np.float32)
            mm_att = np.zeros((n, F.MOBILE_MONEY_WEEKS), dtype=np.float32)
        else:
            p_lstm, rep_att, mm_att = self.lstm.run(
                None,
                {
                    "static": np.ascontiguousarray(inputs.static[:, self.columns]),
                    "repayments": inputs.repayments,
                    "repayment_mask": inputs.repayment_mask,
                    "mobile_money": inputs.mobile_money,
                    "mobile_money_mask": inputs.mobile_money_mask,
                },
            )
            p_lstm = np.asarray(p_lstm, dtype=np.float64).reshape(-1)
        pd_ = self.calibrator.apply(self.weights.combine(p_gbm, p_lstm))
        return Scores(
            probability_of_default=pd_,
            score=self.scorecard.points(pd_),
            band=self.bands.band(pd_),
            gbm_probability=p_gbm,
            lstm_probability=p_lstm,
            repayment_attention=np.asarray(rep_att),
            mobile_money_attention=np.asarray(mm_att),
        )

    def contributions(self, tabular: np.ndarray) -> np.ndarray:
        """[N, len(TABULAR_FEATURES)] exact log-odds contributions of the tabular model (TreeSHAP
        for the GBM, weight times centred value for the logistic regression), in the
        vocabulary's order: a feature the bundle does not use contributes 0."""
        full = np.zeros((len(tabular), len(F.TABULAR_FEATURES)))
        if len(tabular) == 0:
            return full
        x = np.asarray(tabular, dtype=np.float64)[:, self.columns]
        if self.linear is not None:
            full[:, self.columns] = self.linear.contributions(x)
            return full
        assert self.booster is not None  # one of the two, by construction in load_bundle
        # one OpenMP thread: callers already run in a pool sized for the cores, and LightGBM's
        # own threads waiting on busy cores turned a 0.05 ms row into a 30 ms one (p90, loaded)
        raw = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1))
        full[:, self.columns] = raw[:, : len(self.columns)]
        return full

    @property
    def expected_log_odds(self) -> float:
        """The contributions' baseline: the intercept of the logistic regression."""
        return 0.0 if self.linear is None else self.linear.intercept


@dataclass(frozen=True)
class LinearTerms:
    """A logistic regression on standardised inputs, as log-odds terms per feature:
    log-odds = intercept + sum(weights * (x - centre))."""

    intercept: float
    weights: np.ndarray
    centre: np.ndarray

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return (x - self.centre) * self.weights

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearTerms:
        return cls(
            float(data["intercept"]),
            np.asarray(data["weights"], dtype=np.float64),
            np.asarray(data["centre"], dtype=np.float64),
        )


def _check_file(folder: Path, entry: dict[str, Any]) -> Path:
    try:
        return bundle_file(folder, str(entry["file"]), str(entry["sha256"]))
    except BundleFileError as exc:
        raise BundleError(str(exc)) from None


def load_bundle(path: Path | str, *, threads: int = 1) -> ModelBundle:
    """Load and verify a bundle; `path` may be the `current` link, resolved once here."""
    folder = Path(path).resolve()
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise BundleError(f"no model bundle at {path} (run `make train`)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("bundle_format") not in SUPPORTED_FORMATS:
        raise BundleError(f"bundle format {manifest.get('bundle_format')} is not supported")
    names = tuple(manifest["tabular_features"])
    unknown = [n for n in names if n not in F.TABULAR_FEATURES]
    if unknown or not names:
        raise BundleError(
            f"the bundle was trained on features this code does not define: {unknown}"
            if unknown
            else "the bundle names no features"
        )
    models = manifest["models"]
    tabular = models.get("tabular") or models["gbm"] | {"kind": "lightgbm"}
    kind = tabular["kind"]
    booster, linear = None, None
    if kind == "lightgbm":
        booster = lightgbm.Booster(model_file=str(_check_file(folder, models["gbm_native"])))
        if tuple(booster.feature_name()) != names:
            raise BundleError("the native GBM's features differ from the manifest's")
    elif kind == "logistic_regression":
        linear = LinearTerms.from_dict(models["linear"])
        if linear.weights.shape != (len(names),) or linear.centre.shape != (len(names),):
            raise BundleError("the logistic regression's terms do not match its features")
    else:
        raise BundleError(f"unknown tabular model kind {kind!r}")
    lstm = models.get("lstm")
    return ModelBundle(
        version=manifest["version"],
        path=folder,
        manifest=manifest,
        weights=EnsembleWeights(**manifest["ensemble"]),
        calibrator=Calibrator.from_dict(manifest["calibrator"]),
        scorecard=Scorecard.from_dict(manifest["scorecard"]),
        bands=DecisionBands.from_dict(manifest["bands"]),
        tabular_model=open_session(_check_file(folder, tabular), threads),
        kind=kind,
        lstm=None if lstm is None else open_session(_check_file(folder, lstm), threads),
        booster=booster,
        linear=linear,
        feature_names=names,
        columns=np.array([F.TABULAR_FEATURES.index(n) for n in names], dtype=np.int64),
    )


#: What the scoring service can serve: a bundle on Alama's feature vocabulary (features from the
#: feature store) or a tabular bundle (the lender's own columns, sent with each application).
ServedBundle = ModelBundle | TabularBundle


def load_served_bundle(path: Path | str, *, threads: int = 1) -> ServedBundle:
    """Load whichever kind of bundle `path` (or the `current` link) holds, verified."""
    if is_tabular_bundle(path):
        return load_tabular_bundle(path, threads=threads)
    return load_bundle(path, threads=threads)
