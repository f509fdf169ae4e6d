"""Serving-side decision math: ensemble blend, calibration, scorecard points, decision bands.

Training fits these (training.ensemble, training.calibration, training.scorecard); the model
bundle stores their parameters; scoring applies them with this module, plain numpy, so serving
computes exactly what training measured and never needs scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import numpy as np

CalibrationMethod = Literal["isotonic", "platt", "identity"]
METHODS: tuple[CalibrationMethod, ...] = ("isotonic", "platt", "identity")

#: Outputs stay strictly inside (0, 1) so log-odds, the scorecard and log loss stay finite.
EPS = 1e-6


def checked_probabilities(p: np.ndarray) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"probabilities must be a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any((arr < 0.0) | (arr > 1.0)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    return arr


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of p, clipped first so 0 and 1 map to finite values (same clip in fit and apply)."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(q) - np.log1p(-q)


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw model probability to calibrated probability of default.

    isotonic: piecewise-linear through breakpoints (x = raw p, y = calibrated p), flat beyond the
    ends, exactly as scikit-learn's IsotonicRegression(out_of_bounds="clip") predicts.
    platt: sigmoid(a * logit(p) + b). identity: p unchanged (a bundle built without calibration).
    """

    method: CalibrationMethod
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"unknown calibration method {self.method!r}; expected one of {METHODS}"
            )
        if self.method == "isotonic":
            if len(self.x) == 0 or len(self.x) != len(self.y):
                raise ValueError("isotonic calibration needs equally long, non-empty x and y")
            if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < 0):
                raise ValueError("isotonic breakpoints must be non-decreasing in x and y")
        if not (np.isfinite(self.a) and np.isfinite(self.b)):
            raise ValueError("Platt coefficients must be finite")

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, clipped to [EPS, 1 - EPS]."""
        raw = checked_probabilities(p)
        if self.method == "isotonic":
            out = np.interp(raw, np.asarray(self.x), np.asarray(self.y))
        elif self.method == "platt":
            out = 1.0 / (1.0 + np.exp(-(self.a * logit(raw) + self.b)))
        else:
            out = raw
        return np.clip(out, EPS, 1.0 - EPS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for the model bundle manifest."""
        return {
            "method": self.method,
            "x": [float(v) for v in self.x],
            "y": [float(v) for v in self.y],
            "a": float(self.a),
            "b": float(self.b),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        return cls(
            method=cast(CalibrationMethod, d["method"]),
            x=tuple(float(v) for v in d.get("x", ())),
            y=tuple(float(v) for v in d.get("y", ())),
            a=float(d.get("a", 1.0)),
            b=float(d.get("b", 0.0)),
        )


#: PD is clipped this far inside (0, 1) before taking log-odds; far beyond the 300..900 clip.
_PD_EPS = 1e-12


def checked_pd(pd: np.ndarray) -> np.ndarray:
    arr = np.asarray(pd, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any((arr < 0.0) | (arr > 1.0)):
        raise ValueError("probabilities of default must be finite and within [0, 1]")
    return arr


@dataclass(frozen=True)
class Scorecard:
    """points = offset + factor * ln(good:bad odds), rounded to an integer and clipped."""

    base_score: float = 600.0
    base_odds: float = 50.0
    points_to_double_odds: float = 20.0
    min_score: int = 300
    max_score: int = 900

    def __post_init__(self) -> None:
        if self.base_odds <= 0 or self.points_to_double_odds <= 0:
            raise ValueError("base_odds and points_to_double_odds must be positive")
        if self.min_score >= self.max_score:
            raise ValueError("min_score must be below max_score")

    @property
    def factor(self) -> float:
        """Points per unit of natural log-odds."""
        return self.points_to_double_odds / math.log(2.0)

    @property
    def offset(self) -> float:
        """Points at even odds (1:1)."""
        return self.base_score - self.factor * math.log(self.base_odds)

    def points(self, pd: np.ndarray) -> np.ndarray:
        """Integer points; higher is safer. Non-increasing in pd, PD 0 and 1 included."""
        q = np.clip(checked_pd(pd), _PD_EPS, 1.0 - _PD_EPS)
        log_odds = np.log1p(-q) - np.log(q)
        raw = np.rint(self.offset + self.factor * log_odds)
        return np.clip(raw, self.min_score, self.max_score).astype(np.int64)

    def probability_at(self, points: np.ndarray) -> np.ndarray:
        """The PD at which the unrounded, unclipped score equals `points` (inverse of `points`)."""
        s = np.asarray(points, dtype=np.float64)
        # pd = 1 / (1 + odds) with odds = exp((s - offset) / factor); written as a sigmoid.
        return 1.0 / (1.0 + np.exp((s - self.offset) / self.factor))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scorecard:
        return cls(
            base_score=float(d["base_score"]),
            base_odds=float(d["base_odds"]),
            points_to_double_odds=float(d["points_to_double_odds"]),
            min_score=int(d["min_score"]),
            max_score=int(d["max_score"]),
        )


@dataclass(frozen=True)
class DecisionBands:
    """approve if pd < approve_below_pd, decline if pd >= decline_at_or_above_pd, else review."""

    approve_below_pd: float
    decline_at_or_above_pd: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.approve_below_pd <= self.decline_at_or_above_pd <= 1.0:
            raise ValueError(
                "need 0 <= approve_below_pd <= decline_at_or_above_pd <= 1, got "
                f"{self.approve_below_pd} and {self.decline_at_or_above_pd}"
            )

    def band(self, pd: np.ndarray) -> np.ndarray:
        """Array of "approve" / "review" / "decline", one per PD."""
        q = checked_pd(pd)
        return np.where(
            q < self.approve_below_pd,
            "approve",
            np.where(q >= self.decline_at_or_above_pd, "decline", "review"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecisionBands:
        return cls(
            approve_below_pd=float(d["approve_below_pd"]),
            decline_at_or_above_pd=float(d["decline_at_or_above_pd"]),
        )


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class EnsembleWeights:
    gbm: float
    lstm: float

    def combine(self, p_gbm: np.ndarray, p_lstm: np.ndarray) -> np.ndarray:
        return sigmoid(self.gbm * logit(p_gbm) + self.lstm * logit(p_lstm))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
