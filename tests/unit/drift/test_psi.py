"""PSI: zero when nothing moved, grows with the shift, right by hand, finite with empty bins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.drift.psi import (
    DEFAULT_EPSILON,
    ReferenceBins,
    bin_proportions,
    population_stability,
    psi,
)
from tests.unit.drift.conftest import reference_bins


def _normal_reference() -> tuple[np.ndarray, ReferenceBins]:
    values = np.random.default_rng(1).normal(0.0, 1.0, 20_000)
    spec = reference_bins(values)
    return values, ReferenceBins.from_lists(spec["edges"], spec["proportions"])


def test_identical_distributions_have_zero_psi() -> None:
    values, ref = _normal_reference()
    assert psi(ref.proportions, ref.proportions) == 0.0
    assert population_stability(values, ref) == pytest.approx(0.0, abs=1e-12)


def test_psi_grows_with_the_shift() -> None:
    _, ref = _normal_reference()
    rng = np.random.default_rng(2)
    window = rng.normal(0.0, 1.0, 5_000)
    values = [population_stability(window + shift, ref) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    assert values[0] < 0.02
    assert values[-1] > 1.0


def test_psi_matches_a_hand_computed_value() -> None:
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert expected == pytest.approx(0.27465, abs=1e-5)


def test_empty_bins_are_smoothed_not_infinite() -> None:
    eps = DEFAULT_EPSILON
    expected = (1 - 0.5) * math.log(1 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    value = psi([1.0, 0.0], [0.5, 0.5])
    assert math.isfinite(value)
    assert value == pytest.approx(expected)


def test_binning_follows_the_reference_rule() -> None:
    # an edge value belongs to the bin on its right, as in training/export.py
    assert bin_proportions([0.0, 1.0, 1.0, 2.5], [1.0, 2.0]).tolist() == [0.25, 0.5, 0.25]
    assert bin_proportions([np.nan, 5.0], [1.0]).tolist() == [0.0, 1.0]
    assert bin_proportions([], [1.0]).tolist() == [0.0, 0.0]
    assert bin_proportions([3.0, 4.0], []).tolist() == [1.0]  # constant feature: one bin


def test_mismatched_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="proportions"):
        ReferenceBins.from_lists([1.0, 2.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="bin counts"):
        psi([0.5, 0.5], [1.0])


def test_a_window_without_values_is_not_checked() -> None:
    _, ref = _normal_reference()
    assert math.isnan(population_stability([np.nan, np.nan], ref))
    assert math.isnan(population_stability([], ref))
