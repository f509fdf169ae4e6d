"""Sliding window of the most recent decisions: one value per subject (feature or score).

The window is an in-process numpy ring buffer, not a Faust table. Trade-off: a table would be
changelog-backed and survive a restart, but at the cost of a changelog write per decision and
of one window per partition. Drift is a statistical signal over the last `size` decisions, so a
restart that empties the window only delays the next check until it refills; the simplicity
and speed win. One worker should consume all partitions so the window sees every decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from services.common.psi import FloatArray


class SlidingWindow:
    """The last `size` observations of every subject, with their times; oldest evicted first."""

    def __init__(self, subjects: Sequence[str], size: int) -> None:
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.subjects = tuple(subjects)
        self.size = size
        self._column = {name: j for j, name in enumerate(self.subjects)}
        self._values = np.full((size, len(self.subjects)), np.nan, dtype=np.float64)
        self._times = np.zeros(size, dtype=np.float64)
        self._next = 0  # slot the next observation goes to
        self.seen = 0  # observations ever appended

    def __len__(self) -> int:
        return min(self.seen, self.size)

    @property
    def full(self) -> bool:
        return self.seen >= self.size

    @property
    def fill(self) -> float:
        """Share of the window holding observations, 0 to 1."""
        return len(self) / self.size

    def append(self, values: Mapping[str, float], at: datetime) -> None:
        """Record one decision; subjects it lacks are stored as NaN (left out of the PSI)."""
        row = np.full(len(self.subjects), np.nan, dtype=np.float64)
        for name, value in values.items():
            j = self._column.get(name)
            if j is not None:
                row[j] = value
        self._values[self._next] = row
        self._times[self._next] = at.timestamp()
        self._next = (self._next + 1) % self.size
        self.seen += 1

    def values(self, subject: str) -> FloatArray:
        """The subject's values in the window (order is not meaningful for a PSI)."""
        return self._values[: len(self), self._column[subject]].copy()

    @property
    def start(self) -> datetime:
        """Earliest decision time in the window (partitions may interleave out of order)."""
        return datetime.fromtimestamp(
            float(self._times[: len(self)].min()) if len(self) else 0.0, UTC
        )

    @property
    def end(self) -> datetime:
        """Latest decision time in the window."""
        return datetime.fromtimestamp(
            float(self._times[: len(self)].max()) if len(self) else 0.0, UTC
        )
