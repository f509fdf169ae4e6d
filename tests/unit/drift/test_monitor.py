"""The monitor checks PSI once the window is full and alerts on shifted subjects only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.drift.monitor import DriftMonitor
from services.drift.reference import DriftReference, ReferenceMissing, load_reference
from tests.unit.drift.conftest import VERSION, reference_sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _feed(monitor: DriftMonitor, rows: pd.DataFrame) -> list[str]:
    subjects: list[str] = []
    for i, row in enumerate(rows.itertuples(index=False)):
        check = monitor.observe(
            {"income": row.income, "tenure": row.tenure}, row.score, T0 + timedelta(seconds=i)
        )
        subjects += [a.subject for a in check.alerts]
    return subjects


def test_in_distribution_raises_nothing_and_shift_alerts_once(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, window_size=500, threshold=0.25, evaluate_every=50)
    fresh = reference_sample(1000, seed=11)
    assert _feed(monitor, fresh) == []
    assert max(monitor.check().psi.values()) < 0.1

    shifted = reference_sample(400, seed=12)
    shifted["income"] *= 3.0
    assert _feed(monitor, shifted) == ["income"]  # once, though every later check is high
    assert monitor.check().psi["income"] > 0.25


def test_alert_describes_its_window(reference: DriftReference) -> None:
    monitor = DriftMonitor(reference, window_size=200, threshold=0.25, evaluate_every=200)
    rows = reference_sample(200, seed=13)
    rows["score"] -= 150.0
    check = None
    for i, row in enumerate(rows.itertuples(index=False)):
        check = monitor.observe({"income": row.income}, row.score, T0 + timedelta(seconds=i))
    assert check is not None and [a.subject for a in check.alerts] == ["score"]
    alert = check.alerts[0]
    assert alert.model_version == VERSION and alert.window_size == 200
    assert alert.psi > 0.25 and alert.threshold == 0.25
    assert alert.window_start.ToDatetime(tzinfo=UTC) == T0
    assert alert.window_end.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=199)


def test_missing_bundle_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ReferenceMissing, match="ALAMA_DRIFT_BUNDLE_DIR"):
        load_reference(tmp_path / "nowhere")


def test_a_shifted_band_mix_alerts_on_the_band_subject(tmp_path: Path) -> None:
    """PSI by decision band: a review queue filling up is drift even when scores look alike."""
    import json

    from services.drift.psi import ReferenceBins
    from training.bundles import band_distribution

    rng = np.random.default_rng(3)
    training_bands = rng.choice(["approve", "review", "decline"], 5000, p=[0.7, 0.2, 0.1])
    spec = band_distribution(training_bands)
    assert spec["edges"] == [1.5, 2.5] and sum(spec["proportions"]) == pytest.approx(1.0)
    reference = DriftReference(
        model_version=VERSION,
        bins={
            "score": ReferenceBins.from_lists([600.0], [0.5, 0.5]),
            "band": ReferenceBins.from_lists(spec["edges"], spec["proportions"]),
        },
        sample_path=tmp_path / "none.parquet",
    )
    monitor = DriftMonitor(reference, window_size=400, threshold=0.25, evaluate_every=400)
    codes = {"approve": 1, "review": 2, "decline": 3}
    same = rng.choice(["approve", "review", "decline"], 400, p=[0.7, 0.2, 0.1])
    scores = rng.choice([550.0, 650.0], 400)
    for i, (band, score) in enumerate(zip(same, scores, strict=True)):
        check = monitor.observe({}, score, T0 + timedelta(seconds=i), band=codes[band])
    assert check.psi["band"] < 0.05 and not check.alerts
    shifted = rng.choice(["approve", "review", "decline"], 400, p=[0.3, 0.6, 0.1])
    for i, (band, score) in enumerate(zip(shifted, scores, strict=True)):
        check = monitor.observe({}, score, T0 + timedelta(seconds=400 + i), band=codes[band])
    assert [a.subject for a in check.alerts] == ["band"]
    assert json.dumps(spec)  # what reference.json stores
