"""Population stability index (PSI): one definition for every comparison of two distributions.

The drift service compares a live window with the bundle's training reference (per feature and
for the score, the inner quantile edges of the training data and the training share in each bin,
`training/bundles.py`); the outcomes service compares the challenger's PDs in shadow with the
champion's on the same applications, cut at the champion's deciles. Either way both sides are
binned with the very same edges and rule (``searchsorted(..., side="right")``)::

    PSI = sum_i (p_i - q_i) * ln(p_i / q_i)     p: window share, q: reference share

Empty bins would make the logarithm infinite, so both shares are floored at `epsilon` first.
Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_EPSILON = 1e-4
REFERENCE_BINS = 10  # the bundles' reference cut (training/bundles.py)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ReferenceBins:
    """One subject's training distribution: inner bin edges and the share in each bin."""

    edges: FloatArray  # k inner edges -> k + 1 bins
    proportions: FloatArray  # k + 1 shares summing to 1

    def __post_init__(self) -> None:
        if len(self.proportions) != len(self.edges) + 1:
            raise ValueError(
                f"{len(self.edges)} edges need {len(self.edges) + 1} proportions,"
                f" got {len(self.proportions)}"
            )

    @classmethod
    def from_lists(cls, edges: Sequence[float], proportions: Sequence[float]) -> ReferenceBins:
        return cls(
            edges=np.asarray(edges, dtype=np.float64),
            proportions=np.asarray(proportions, dtype=np.float64),
        )


def quantile_edges(values: ArrayLike, bins: int = REFERENCE_BINS) -> FloatArray:
    """Inner edges of `bins` quantile bins of `values` (ties merged), as bundles cut the
    training reference, so a PSI on these edges reads like the drift service's."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.zeros(0, dtype=np.float64)
    return np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1])).astype(np.float64)


def bin_proportions(values: ArrayLike, edges: ArrayLike) -> FloatArray:
    """Share of `values` in each bin cut by `edges`, binned exactly as the reference was.

    NaN values (a feature missing from a decision) are left out rather than counted in a bin.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    cuts = np.asarray(edges, dtype=np.float64)
    counts = np.bincount(np.searchsorted(cuts, x, side="right"), minlength=len(cuts) + 1)
    total = counts.sum()
    if total == 0:
        return np.zeros(len(cuts) + 1, dtype=np.float64)
    return (counts / total).astype(np.float64)


def psi(actual: ArrayLike, expected: ArrayLike, epsilon: float = DEFAULT_EPSILON) -> float:
    """PSI between two vectors of bin shares; empty bins are floored at `epsilon`."""
    p = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    q = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    if p.shape != q.shape:
        raise ValueError(f"bin counts differ: {p.shape} vs {q.shape}")
    return float(np.sum((p - q) * np.log(p / q)))


def population_stability(
    values: ArrayLike, reference: ReferenceBins, epsilon: float = DEFAULT_EPSILON
) -> float:
    """PSI of raw window values against one subject's reference bins; NaN with no values.

    A subject absent from every decision in the window has no distribution to compare: NaN
    (not checked) rather than the huge PSI of an all-empty window.
    """
    x = np.asarray(values, dtype=np.float64)
    if np.isnan(x).all():
        return float("nan")
    return psi(bin_proportions(x, reference.edges), reference.proportions, epsilon)
