"""MLflow tracking: every training run logged, its bundle registered as a model version.

The run also keeps the held-out rows the bundle was evaluated on (`training.held_out`, artifact
`held_out/held_out.parquet`), so the promotion gate can later score this version and the
champion on the same rows. Registering does not decide which version serves: that is
`training.promotion`'s (first champion, or challenger behind the gate).

The store is local (SQLite plus an artifact folder under artifacts/mlflow), so it works on a
machine with no server; point MLFLOW_TRACKING_URI elsewhere to use a shared one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from services.common.model_registry import REGISTERED_MODEL, tracking_uri
from training.held_out import ARTIFACT_PATH, FILE_NAME, held_out_rows, write_held_out
from training.library_output import into_log
from training.paths import ARTIFACTS
from training.pipeline import TrainedModels
from training.registry import Registry

EXPERIMENT = "alama-credit-scoring"


class BundleModel(PythonModel):  # type: ignore[misc]
    """The bundle as an MLflow pyfunc: feature rows in, calibrated PD out (ONNX Runtime)."""

    def load_context(self, context: PythonModelContext) -> None:
        from services.common.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame) -> pd.Series:
        from services.common.features import model_inputs

        scores = self.bundle.score(model_inputs(model_input))
        return pd.Series(scores.probability_of_default, index=model_input.index, name="pd")


def _configure(store: Path) -> None:
    store.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(store))
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=(store / "artifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)


def _flatten(prefix: str, block: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in block.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out |= _flatten(name, value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def track_run(
    trained: TrainedModels,
    metrics: dict[str, Any],
    bundle: Path,
    store: Path = ARTIFACTS / "mlflow",
) -> str:
    """Log the run and register the bundle; returns the registered model version."""
    with into_log():
        return _track(trained, metrics, bundle, store)


def _track(trained: TrainedModels, metrics: dict[str, Any], bundle: Path, store: Path) -> str:
    _configure(store)
    manifest_version = bundle.resolve().name
    with mlflow.start_run(run_name=manifest_version):
        mlflow.log_params(
            {
                "profile": trained.profile.name,
                "members": trained.profile.n_members,
                "seed": trained.profile.seed,
                "bundle_version": manifest_version,
                "calibrator": trained.calibrator.method,
                "ensemble_gbm_weight": trained.weights.gbm,
                **{f"gbm.{k}": v for k, v in trained.gbm.params.items() if k != "seed"},
            }
        )
        mlflow.log_metrics(_flatten("", {k: metrics[k] for k in ("test", "out_of_time")}))
        mlflow.log_artifacts(str(bundle.resolve()), artifact_path="bundle")
        with tempfile.TemporaryDirectory() as scratch:
            rows = write_held_out(held_out_rows(trained), Path(scratch) / FILE_NAME)
            mlflow.log_artifact(str(rows), artifact_path=ARTIFACT_PATH)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=BundleModel(),
            artifacts={"bundle": str(bundle.resolve())},
            code_paths=None,
            pip_requirements=["onnxruntime", "numpy", "pandas"],
            registered_model_name=REGISTERED_MODEL,
        )
    version = str(info.registered_model_version)
    Registry(REGISTERED_MODEL).tag_bundle(version, manifest_version)  # serving finds the bundle
    return version
