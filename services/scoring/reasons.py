"""TreeSHAP contributions from the bundle's native LightGBM, for the reasons in each decision.

The bundle ships the native GBM (`gbm.txt`) next to its ONNX export; its exact TreeSHAP
(`pred_contrib=True`) says which features pushed this member's log-odds of default up; the shared
reason text turns the strongest into sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm
import numpy as np

from services.common.features import TABULAR_FEATURES


@dataclass(frozen=True)
class ReasonModel:
    """The bundle's native GBM, kept only for its TreeSHAP contributions."""

    booster: lightgbm.Booster

    @classmethod
    def load(cls, bundle_path: Path) -> ReasonModel:
        return cls(lightgbm.Booster(model_file=str(bundle_path / "gbm.txt")))

    def contributions(self, tabular: np.ndarray) -> np.ndarray:
        """[N, n_features] log-odds contributions (the bias column dropped)."""
        if len(tabular) == 0:
            return np.zeros((0, len(TABULAR_FEATURES)))
        raw = np.asarray(
            self.booster.predict(np.asarray(tabular, dtype=np.float64), pred_contrib=True)
        )
        return raw[:, : len(TABULAR_FEATURES)]
