"""Load a model bundle and turn model inputs into decisions; shared by scoring and explanation.

A bundle (`artifacts/bundles/<version>/`, written by `training`) is self-describing: its manifest
fixes the feature order, sequence shapes, ensemble weights, calibrator, scorecard and bands.
Loading checks the format, the files' hashes and that the feature order matches this code's
feature definitions, so a mismatched bundle fails at start-up rather than scoring wrongly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from services.common import features as F
from services.common.decision import Calibrator, DecisionBands, EnsembleWeights, Scorecard

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


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class ModelBundle:
    version: str
    path: Path
    manifest: dict[str, Any]
    weights: EnsembleWeights
    calibrator: Calibrator
    scorecard: Scorecard
    bands: DecisionBands
    gbm: ort.InferenceSession
    lstm: ort.InferenceSession

    def score(self, inputs: F.ModelInputs) -> Scores:
        """Both ONNX models, the ensemble, calibration, points and band, for a batch."""
        p_gbm = np.asarray(self.gbm.run(None, {"tabular": inputs.tabular})[1])[:, 1]
        p_lstm, rep_att, mm_att = self.lstm.run(
            None,
            {
                "static": inputs.static,
                "repayments": inputs.repayments,
                "repayment_mask": inputs.repayment_mask,
                "mobile_money": inputs.mobile_money,
                "mobile_money_mask": inputs.mobile_money_mask,
            },
        )
        p_lstm = np.asarray(p_lstm, dtype=np.float64).reshape(-1)
        pd_ = self.calibrator.apply(self.weights.combine(p_gbm.astype(np.float64), p_lstm))
        return Scores(
            probability_of_default=pd_,
            score=self.scorecard.points(pd_),
            band=self.bands.band(pd_),
            gbm_probability=p_gbm.astype(np.float64),
            lstm_probability=p_lstm,
            repayment_attention=np.asarray(rep_att),
            mobile_money_attention=np.asarray(mm_att),
        )


def _check_file(folder: Path, entry: dict[str, Any]) -> Path:
    path = folder / entry["file"]
    if not path.exists():
        raise BundleError(f"{path} is missing")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise BundleError(f"{path} does not match the manifest's sha256")
    return path


def load_bundle(path: Path | str, *, threads: int = 1) -> ModelBundle:
    """Load and verify a bundle; `path` may be the `current` link, resolved once here."""
    folder = Path(path).resolve()
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise BundleError(f"no model bundle at {path} (run `make train`)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("bundle_format") not in SUPPORTED_FORMATS:
        raise BundleError(f"bundle format {manifest.get('bundle_format')} is not supported")
    if tuple(manifest["tabular_features"]) != F.TABULAR_FEATURES:
        raise BundleError("the bundle was trained on other features than this code defines")
    models = manifest["models"]
    return ModelBundle(
        version=manifest["version"],
        path=folder,
        manifest=manifest,
        weights=EnsembleWeights(**manifest["ensemble"]),
        calibrator=Calibrator.from_dict(manifest["calibrator"]),
        scorecard=Scorecard.from_dict(manifest["scorecard"]),
        bands=DecisionBands.from_dict(manifest["bands"]),
        gbm=_session(_check_file(folder, models["gbm"]), threads),
        lstm=_session(_check_file(folder, models["lstm"]), threads),
    )
