"""The sliding window keeps the last `size` decisions per subject and evicts the oldest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.drift.windows import SlidingWindow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_window_evicts_oldest() -> None:
    window = SlidingWindow(("a", "score"), size=3)
    for i in range(5):
        window.append({"a": float(i), "score": 600.0 + i}, T0 + timedelta(seconds=i))
    assert sorted(window.values("a").tolist()) == [2.0, 3.0, 4.0]
    assert sorted(window.values("score").tolist()) == [602.0, 603.0, 604.0]
    assert window.seen == 5 and len(window) == 3 and window.full
    assert window.start == T0 + timedelta(seconds=2)
    assert window.end == T0 + timedelta(seconds=4)


def test_window_fill_and_missing_subjects() -> None:
    window = SlidingWindow(("a", "b"), size=4)
    assert window.fill == 0.0 and len(window.values("a")) == 0
    window.append({"a": 1.0, "unknown": 9.0}, T0)
    assert window.fill == 0.25 and not window.full
    assert window.values("a").tolist() == [1.0]
    assert np.isnan(window.values("b")).all()  # a missing feature is NaN, left out of the PSI


def test_window_needs_a_size() -> None:
    with pytest.raises(ValueError):
        SlidingWindow(("a",), size=0)
