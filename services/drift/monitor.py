"""The drift monitor: feeds decisions into the window and checks PSI against the reference.

Pure domain logic (no Kafka, no metrics) so it is tested directly; `agents.py` wires it to the
stream. Subjects are every model feature, the score and the decision band mix. PSI is checked
every `evaluate_every` decisions once the window is full: a half-empty window would give noisy
PSIs, and checking ~60 subjects on every decision wastes CPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.common.protos.alama.events.v1.drift_pb2 import DriftAlert
from services.common.psi import population_stability
from services.drift.alerts import AlertGate, build_alert
from services.drift.reference import BAND, SCORE, DriftReference
from services.drift.windows import SlidingWindow


@dataclass(frozen=True)
class DriftCheck:
    """What one decision changed: the PSIs (when checked this time) and the alerts raised."""

    psi: dict[str, float] = field(default_factory=dict)
    alerts: list[DriftAlert] = field(default_factory=list)


class DriftMonitor:
    def __init__(
        self,
        reference: DriftReference,
        *,
        window_size: int,
        threshold: float,
        evaluate_every: int = 100,
    ) -> None:
        self.reference = reference
        self.threshold = threshold
        self.evaluate_every = max(1, evaluate_every)
        self.window = SlidingWindow(reference.subjects, window_size)
        self.gate = AlertGate(threshold=threshold, cooldown=window_size)

    def observe(
        self,
        features: Mapping[str, float],
        score: float,
        at: datetime,
        band: int | None = None,
    ) -> DriftCheck:
        """Add one decision; check every subject when the window is full and a check is due.

        `band` (the DecisionBand number) feeds the PSI of the band mix when the reference has one.
        """
        values = {**features, SCORE: score}
        if band is not None:
            values[BAND] = float(band)
        self.window.append(values, at)
        if not self.window.full or self.window.seen % self.evaluate_every:
            return DriftCheck()
        return self.check()

    def check(self) -> DriftCheck:
        """PSI of every subject over the current window, and the alerts that are due."""
        result = DriftCheck()
        for subject, bins in self.reference.bins.items():
            value = population_stability(self.window.values(subject), bins)
            if math.isnan(value):
                continue  # no decision carried this subject: nothing to compare
            result.psi[subject] = value
            if self.gate.should_alert(subject, value, self.window.seen):
                result.alerts.append(
                    build_alert(
                        model_version=self.reference.model_version,
                        subject=subject,
                        psi=value,
                        threshold=self.threshold,
                        window_start=self.window.start,
                        window_end=self.window.end,
                        window_size=len(self.window),
                        seen=self.window.seen,
                    )
                )
        return result
