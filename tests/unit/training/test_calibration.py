"""Calibration: it fixes miscalibration, matches scikit-learn with plain numpy, and round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from services.common.decision import EPS, Calibrator
from training.calibration import choose_calibrator, fit_calibrator
from training.evaluate import expected_calibration_error


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p_raw = sigmoid(2 * logit(p_true) + 1): too extreme and biased upwards; y ~ p_true."""
    rng = np.random.default_rng(seed)
    p_true = _sigmoid(rng.normal(-2.0, 1.0, n))
    y = rng.binomial(1, p_true)
    return _sigmoid(2.0 * _logit(p_true) + 1.0), y, p_true


def _stepped(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The true PD jumps at p_raw = 0.5: a shape no sigmoid of logit(p_raw) can follow."""
    rng = np.random.default_rng(seed)
    p_raw = rng.uniform(0.0, 1.0, n)
    y = rng.binomial(1, np.where(p_raw < 0.5, 0.03, 0.4))
    return p_raw, y


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_lowers_ece_on_held_out_data(method: str) -> None:
    p_raw, y, _ = _overconfident(100_000, seed=1)
    fit, test = slice(0, 50_000), slice(50_000, None)
    calibrator = fit_calibrator(p_raw[fit], y[fit], method)
    before = expected_calibration_error(y[test], p_raw[test])
    after = expected_calibration_error(y[test], calibrator.apply(p_raw[test]))
    assert before > 0.05
    assert after < 0.01
    assert after < before / 5


def test_platt_recovers_the_inverse_distortion() -> None:
    p_raw, y, _ = _overconfident(40_000, seed=2)
    calibrator = fit_calibrator(p_raw, y, "platt")
    # logit(p_raw) = 2 logit(p_true) + 1, so logit(p_true) = 0.5 logit(p_raw) - 0.5.
    assert calibrator.a == pytest.approx(0.5, abs=0.05)
    assert calibrator.b == pytest.approx(-0.5, abs=0.1)


def test_isotonic_apply_matches_sklearn_including_out_of_range() -> None:
    p_raw, y, _ = _overconfident(5_000, seed=3)
    inside = p_raw[(p_raw > 0.01) & (p_raw < 0.99)]
    calibrator = fit_calibrator(inside, y[(p_raw > 0.01) & (p_raw < 0.99)], "isotonic")
    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        inside, y[(p_raw > 0.01) & (p_raw < 0.99)]
    )
    probe = np.concatenate([[0.0, 0.001, 0.995, 1.0], np.linspace(0.0, 1.0, 1001), p_raw])
    expected = np.clip(reference.predict(probe), EPS, 1.0 - EPS)
    np.testing.assert_allclose(calibrator.apply(probe), expected, rtol=0, atol=1e-12)


def test_platt_apply_matches_sklearn() -> None:
    p_raw, y, _ = _overconfident(5_000, seed=4)
    calibrator = fit_calibrator(p_raw, y, "platt")
    clipped = np.clip(p_raw, EPS, 1.0 - EPS)
    reference = LogisticRegression(C=np.inf, max_iter=1000).fit(_logit(clipped)[:, None], y)
    probe = np.clip(np.concatenate([np.linspace(0.0, 1.0, 1001), p_raw]), EPS, 1.0 - EPS)
    expected = np.clip(reference.predict_proba(_logit(probe)[:, None])[:, 1], EPS, 1.0 - EPS)
    np.testing.assert_allclose(calibrator.apply(probe), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["isotonic", "platt", "identity"])
def test_to_dict_round_trips_through_json(method: str) -> None:
    p_raw, y, _ = _overconfident(3_000, seed=5)
    calibrator = fit_calibrator(p_raw, y, method)
    restored = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert restored == calibrator
    np.testing.assert_array_equal(restored.apply(p_raw), calibrator.apply(p_raw))


def test_apply_stays_strictly_inside_zero_one() -> None:
    p_raw, y, _ = _overconfident(3_000, seed=6)
    for method in ("isotonic", "platt", "identity"):
        out = fit_calibrator(p_raw, y, method).apply(np.array([0.0, 1e-9, 0.5, 1.0 - 1e-9, 1.0]))
        assert np.all(out >= EPS)
        assert np.all(out <= 1.0 - EPS)


def test_choose_picks_platt_when_the_distortion_is_a_sigmoid() -> None:
    p_raw, y, _ = _overconfident(5_000, seed=7)
    calibrator, scores = choose_calibrator(p_raw, y, seed=7)
    assert calibrator.method == "platt"
    assert scores["platt_brier"] <= scores["isotonic_brier"]
    assert scores["platt_brier"] < scores["raw_brier"]
    assert set(scores) == {
        f"{m}_{s}" for m in ("isotonic", "platt", "raw") for s in ("brier", "log_loss")
    }


def test_choose_picks_isotonic_when_the_true_curve_is_a_step() -> None:
    p_raw, y = _stepped(5_000, seed=8)
    calibrator, scores = choose_calibrator(p_raw, y, seed=8)
    assert calibrator.method == "isotonic"
    assert scores["isotonic_brier"] < scores["platt_brier"] - 0.005
    # Refitted on all the data: the step is there.
    low, high = calibrator.apply(np.array([0.25, 0.75]))
    assert low == pytest.approx(0.03, abs=0.02)
    assert high == pytest.approx(0.4, abs=0.05)


def test_choose_is_deterministic_for_a_seed() -> None:
    p_raw, y, _ = _overconfident(2_000, seed=9)
    assert choose_calibrator(p_raw, y, seed=3) == choose_calibrator(p_raw, y, seed=3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        fit_calibrator(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]), "platt")
    with pytest.raises(ValueError, match="unknown"):
        fit_calibrator(np.array([0.1, 0.2]), np.array([0, 1]), "beta")
    with pytest.raises(ValueError, match="within"):
        fit_calibrator(np.array([0.1, 1.2]), np.array([0, 1]), "platt")
    with pytest.raises(ValueError, match="at least 5 defaults"):
        choose_calibrator(np.linspace(0.1, 0.9, 50), np.array([1, 1, 1] + [0] * 47))
    with pytest.raises(ValueError, match="isotonic"):
        Calibrator("isotonic")
    with pytest.raises(ValueError, match="unknown"):
        Calibrator.from_dict({"method": "spline"})
