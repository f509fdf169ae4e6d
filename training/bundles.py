"""Where bundles live and how one becomes the one served: shared by every kind of training run.

`make train` and `python -m training tabular --promote` both write a versioned folder under
`artifacts/bundles/` and point `current` at it (scoring, explanation and drift follow the link),
and both give drift the same reference: quantile bins of every model input, the score and the
band mix on the training rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from training.paths import ARTIFACTS

#: ALAMA_TRAINING_BUNDLES moves it (a test's own root, a volume in a pod)
BUNDLES = Path(os.environ.get("ALAMA_TRAINING_BUNDLES") or ARTIFACTS / "bundles")
REFERENCE_BINS = 10
#: DecisionBand numbers (decisions.proto): how a decision's band reaches the drift monitor.
BAND_CODES = {"approve": 1, "review": 2, "decline": 3}


def reference_distribution(
    values: np.ndarray, bins: int = REFERENCE_BINS
) -> dict[str, list[float]]:
    """Quantile bin edges and the training share in each bin: the PSI baseline for drift."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "proportions": (counts / counts.sum()).tolist()}


def band_distribution(bands: np.ndarray) -> dict[str, list[float]]:
    """The training share of each decision band, as bins over the band numbers 1, 2 and 3.

    PSI over these bins says whether the mix of approvals, reviews and declines has moved, which
    a risk officer feels first (a review queue filling up) before any single feature looks odd.
    """
    codes = np.array([BAND_CODES[str(b)] for b in bands], dtype=np.float64)
    counts = np.array([(codes == c).sum() for c in (1, 2, 3)], dtype=np.float64)
    return {"edges": [1.5, 2.5], "proportions": (counts / max(counts.sum(), 1)).tolist()}


def promote_bundle(version: str, root: Path = BUNDLES) -> None:
    """Point <root>/current at `version` atomically (scoring watches this link)."""
    target = root / version
    if not (target / "manifest.json").exists():
        raise FileNotFoundError(f"no bundle {version} in {root}")
    tmp = root / f".current-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version)
    os.replace(tmp, root / "current")
