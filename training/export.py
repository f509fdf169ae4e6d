"""Write a versioned model bundle and promote it: artifacts/bundles/<version>/ and `current`.

The bundle is everything serving needs and everything an auditor asks for: both ONNX graphs,
the native LightGBM model (for TreeSHAP), the manifest (feature order, sequence shapes, ensemble
weights, calibrator, scorecard, bands, training-data hashes, metrics) and the drift reference.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from services.common import features as F
from services.common.feast_config import FEATURE_SERVICE
from training.baseline import export_logistic_regression_onnx, predict_logistic_regression
from training.bundles import (
    BUNDLES,
    band_distribution,
    promote_bundle,
    reference_distribution,
)
from training.gbm import export_gbm_onnx, predict_gbm, predict_gbm_onnx
from training.lstm import export_lstm_onnx, predict_lstm, predict_onnx
from training.pipeline import TrainedModels, training_data_hash

BUNDLE_FORMAT = 1
PARITY_ROWS = 1000
PARITY_TOLERANCE = 1e-5
REFERENCE_SAMPLE_ROWS = 2000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_bundle(
    trained: TrainedModels,
    metrics: dict[str, Any],
    *,
    promote: bool = True,
    root: Path = BUNDLES,
) -> Path:
    created = datetime.now(UTC)
    data_hash = training_data_hash(trained.frame)
    version = f"{trained.profile.name}-{created:%Y%m%d%H%M%S}-{data_hash[:8]}"
    folder = root / version
    folder.mkdir(parents=True, exist_ok=False)

    rows = trained.splits.test[:PARITY_ROWS]
    models, parity = (
        _export_plain(trained, folder, rows)
        if trained.shipped == "logistic_regression"
        else _export_ensemble(trained, folder, rows)
    )

    train_rows = trained.splits.train
    reference = {
        name: reference_distribution(trained.inputs.tabular[train_rows, j])
        for j, name in enumerate(F.TABULAR_FEATURES)
    }
    train_pd = trained.final_pd(train_rows)
    reference["score"] = reference_distribution(trained.scorecard.points(train_pd))
    reference["band"] = band_distribution(trained.bands.band(train_pd))

    (folder / "reference.json").write_text(json.dumps(reference))
    # a sample of training rows, for drift reports that compare whole distributions (Evidently)
    sample = train_rows[:: max(1, len(train_rows) // REFERENCE_SAMPLE_ROWS)][:REFERENCE_SAMPLE_ROWS]
    frame = pd.DataFrame(trained.inputs.tabular[sample], columns=list(F.TABULAR_FEATURES))
    frame["score"] = trained.scorecard.points(trained.final_pd(sample))
    frame.to_parquet(folder / "reference_sample.parquet", index=False)

    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "shipped_model": trained.shipped,
        "ensemble_refused": trained.refusal,
        "version": version,
        "created_at": created.isoformat(),
        "profile": trained.profile.name,
        "feature_service": FEATURE_SERVICE,
        "tabular_features": list(trained.features.names),
        "features_dropped": trained.features.dropped,
        "protected_attributes_excluded": list(F.PROTECTED_ATTRIBUTES),
        "sequences": {
            name: shape
            for name, shape in {
                "repayments": {
                    "steps": F.REPAYMENT_MONTHS,
                    "channels": list(F.REPAYMENT_CHANNELS),
                },
                "mobile_money": {
                    "steps": F.MOBILE_MONEY_WEEKS,
                    "channels": list(F.MOBILE_MONEY_CHANNELS),
                },
            }.items()
            if name in trained.features.sequences and models["lstm"] is not None
        },
        "models": models,
        "reference": {
            "bins": "reference.json",
            "sample": "reference_sample.parquet",
            "sha256": {
                name: _sha256(folder / name)
                for name in ("reference.json", "reference_sample.parquet")
            },
        },
        "onnx_parity_max_abs_diff": parity,
        "ensemble": trained.weights.to_dict()
        if trained.shipped == "ensemble"
        else {"gbm": 1.0, "lstm": 0.0},
        "calibrator": trained.calibrator.to_dict(),
        "scorecard": trained.scorecard.to_dict(),
        "bands": trained.bands.to_dict(),
        "business_cost": trained.cost.__dict__,
        "gbm_params": trained.gbm.params | {"best_iteration": trained.gbm.best_iteration},
        "training_data": {
            "source": trained.book.source,
            "cutoff": trained.book.cutoff.isoformat(),
            "members": len(trained.book.members),
            "applications": len(trained.book.labelled),
            "loan_book_fingerprint": trained.book.fingerprint(),
            **{k: v for k, v in trained.book.meta.items() if k.startswith("world_")},
            "training_set_sha256": data_hash,
            "splits": trained.splits.sizes(),
        },
        "metrics": {k: metrics[k] for k in ("test", "out_of_time", "fairness") if k in metrics},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    if promote:
        promote_bundle(version, root)
    return folder


def _model_entry(folder: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {"file": name, "sha256": _sha256(folder / name), **extra}


def _export_ensemble(
    trained: TrainedModels, folder: Path, rows: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The GBM (ONNX and native, for TreeSHAP) and the LSTM where there is one."""
    export_gbm_onnx(trained.gbm, folder / "gbm.onnx")
    (folder / "gbm.txt").write_text(
        trained.gbm.booster.model_to_string(num_iteration=trained.gbm.best_iteration)
    )
    tabular = trained.tabular[rows]
    gbm_gap = float(
        np.abs(
            predict_gbm(trained.gbm, tabular) - predict_gbm_onnx(folder / "gbm.onnx", tabular)
        ).max()
    )
    lstm_gap = None
    if trained.lstm is not None:
        export_lstm_onnx(trained.lstm, folder / "lstm.onnx")
        seq = trained.sequences(rows)
        lstm_gap = float(
            np.abs(predict_lstm(trained.lstm, seq) - predict_onnx(folder / "lstm.onnx", seq)).max()
        )
    if max(gbm_gap, lstm_gap or 0.0) > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX disagrees with the native models: gbm {gbm_gap}, lstm {lstm_gap}")
    models = {
        "tabular": _model_entry(
            folder, "gbm.onnx", kind="lightgbm", inputs=["tabular"], output="probabilities[:, 1]"
        ),
        "gbm_native": _model_entry(folder, "gbm.txt"),
        "lstm": None
        if trained.lstm is None
        else _model_entry(
            folder,
            "lstm.onnx",
            inputs=["static", "repayments", "repayment_mask", "mobile_money", "mobile_money_mask"],
            output="probability",
        ),
    }
    return models, {"gbm": gbm_gap, "lstm": lstm_gap, "rows": len(rows)}


def _export_plain(
    trained: TrainedModels, folder: Path, rows: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plain logistic regression (ONNX, double precision) and its log-odds terms."""
    names = trained.features.names
    export_logistic_regression_onnx(trained.plain, len(names), folder / "logistic_regression.onnx")
    tabular = trained.tabular[rows].astype(np.float64)
    session = ort.InferenceSession(
        str(folder / "logistic_regression.onnx"), providers=["CPUExecutionProvider"]
    )
    onnx_p = np.asarray(session.run(None, {"tabular": tabular})[1])[:, 1]
    gap = float(np.abs(predict_logistic_regression(trained.plain, tabular) - onnx_p).max())
    if gap > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX disagrees with the logistic regression: {gap}")
    scaler, logistic = trained.plain.named_steps["scale"], trained.plain.named_steps["logistic"]
    models = {
        "tabular": _model_entry(
            folder,
            "logistic_regression.onnx",
            kind="logistic_regression",
            inputs=["tabular"],
            output="probabilities[:, 1]",
        ),
        "linear": {
            "intercept": float(logistic.intercept_[0]),
            "weights": (logistic.coef_[0] / scaler.scale_).tolist(),
            "centre": scaler.mean_.tolist(),
        },
        "lstm": None,
    }
    return models, {"logistic_regression": gap, "rows": len(rows)}
