"""The promotion gate: an equal challenger passes; a weaker, a miscalibrated or an unfair one is
refused naming the check that failed; matured outcomes are checked only when given; the same
inputs give the same intervals; the fast bootstrap measures what fairness_report and
roc_auc_score measure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.common.decision import DecisionBands
from services.common.model_metrics import auc_samples, roc_auc
from training.evaluate import fairness_report
from training.gate import (
    HELD_OUT,
    MATURED_OUTCOMES,
    EvaluationSet,
    GatePolicy,
    fairness_samples,
    gate,
)

ROWS = 3000
BANDS = DecisionBands(approve_below_pd=0.15, decline_at_or_above_pd=0.40)
POLICY = GatePolicy(bootstrap_samples=200)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class World:
    """Members with a latent risk x (true PD sigmoid(-2 + 1.2 x)), their outcomes and groups,
    independent of x so that a model built on x alone is fair."""

    x: np.ndarray
    y: np.ndarray
    groups: dict[str, np.ndarray]
    rng: np.random.Generator

    def model(self, noise: float) -> np.ndarray:
        """A calibrated model that sees x through noise (more noise, lower AUC): E[true PD | seen],
        by the probit approximation of a logistic-normal mean."""
        seen = self.x + noise * self.rng.normal(size=self.x.size)
        mean, var = seen / (1.0 + noise**2), noise**2 / (1.0 + noise**2)
        return _sigmoid((-2.0 + 1.2 * mean) / np.sqrt(1.0 + np.pi / 8.0 * 1.2**2 * var))

    def retrained(self, pd: np.ndarray) -> np.ndarray:
        """The same model refitted: its PDs with a little jitter on the log-odds."""
        logit = np.log(pd) - np.log1p(-pd)
        return _sigmoid(logit + 0.02 * self.rng.normal(size=pd.size))


def _world(rows: int = ROWS, seed: int = 7) -> World:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    y = (rng.random(rows) < _sigmoid(-2.0 + 1.2 * x)).astype(np.int64)
    groups = {
        "gender": rng.choice(["female", "male"], rows),
        "age_band": rng.choice(["18-29", "30-49", "50+"], rows),
    }
    return World(x, y, groups, rng)


def _held_out(world: World, challenger: np.ndarray, champion: np.ndarray) -> EvaluationSet:
    return EvaluationSet.from_bands(world.y, champion, challenger, BANDS, world.groups)


def _names(checks: object) -> list[str]:
    return [c.name for c in checks]  # type: ignore[attr-defined]


def test_a_challenger_as_good_as_the_champion_passes() -> None:
    world = _world()
    champion = world.model(0.3)
    challenger = world.retrained(champion)
    result = gate({HELD_OUT: _held_out(world, challenger, champion)}, POLICY)
    assert result.passed, result.refusal()
    assert result.refusal() is None
    assert _names(result.checks) == [
        "auc_vs_champion[held_out]",
        "ece[held_out]",
        "disparate_impact[gender]",
        "equal_opportunity[gender]",
        "disparate_impact[age_band]",
        "equal_opportunity[age_band]",
    ]
    for check in result.checks:
        assert check.interval is not None
        assert check.interval[0] <= check.interval[1]
    auc = result.checks[0]
    assert auc.value == pytest.approx(auc.measures["challenger_auc"] - auc.measures["champion_auc"])
    assert auc.measures["champion_auc"] == pytest.approx(roc_auc_score(world.y, champion))


def test_a_challenger_with_auc_002_lower_is_refused_on_auc() -> None:
    world = _world()
    champion, challenger = world.model(0.3), world.model(0.5)
    result = gate({HELD_OUT: _held_out(world, challenger, champion)}, POLICY)
    assert not result.passed
    assert _names(result.failed) == ["auc_vs_champion[held_out]"]
    auc = result.failed[0]
    assert auc.value is not None and -0.035 < auc.value < -0.012
    assert auc.interval is not None and auc.interval[1] < 0  # paired: clearly worse
    reason = result.refusal()
    assert reason is not None
    assert reason.startswith("refused: auc_vs_champion[held_out] -0.0")
    assert re.fullmatch(
        r"refused: auc_vs_champion\[held_out\] -0\.\d{4} < -0\.005 "
        r"\(95% CI -0\.\d{4} to -0\.\d{4}\)",
        reason,
    )
    assert "challenger AUC" in auc.detail and "champion" in auc.detail


def test_a_miscalibrated_challenger_is_refused_on_ece() -> None:
    world = _world()
    champion = world.model(0.3)
    shifted = np.clip(champion + 0.1, 0.0, 1.0)  # same ranking, PDs 0.1 too high
    result = gate({HELD_OUT: _held_out(world, shifted, champion)}, POLICY)
    assert not result.passed
    assert "ece[held_out]" in _names(result.failed)
    assert "auc_vs_champion[held_out]" not in _names(result.failed)
    ece = next(c for c in result.checks if c.name == "ece[held_out]")
    assert ece.value is not None and ece.value > 0.05
    assert "ece[held_out]" in (result.refusal() or "")


def test_an_unfair_challenger_is_refused_naming_the_attribute() -> None:
    world = _world()
    champion = challenger = world.model(0.3)
    held_out = _held_out(world, challenger, champion)
    assert held_out.challenger_approved is not None
    # women need a PD below 0.08 where men need 0.15: approvals depend on gender
    female = world.groups["gender"] == "female"
    unfair = held_out.challenger_approved & ~(female & (challenger >= 0.08))
    data = EvaluationSet(world.y, champion, challenger, unfair, world.groups)
    result = gate({HELD_OUT: data}, POLICY)
    assert not result.passed
    failed = _names(result.failed)
    assert "disparate_impact[gender]" in failed and "equal_opportunity[gender]" in failed
    reason = result.refusal() or ""
    assert re.search(r"disparate_impact\[gender\] 0\.\d{4} outside \[0\.9, 1\.1\]", reason)
    assert re.search(
        r"equal_opportunity\[gender\] 0\.\d{4} >= 0\.05 \(95% CI 0\.\d{4} to 0\.\d{4}\)", reason
    )


def test_matured_outcomes_are_checked_when_given_and_absent_otherwise() -> None:
    world = _world()
    champion = world.model(0.3)
    held_out = _held_out(world, world.retrained(champion), champion)
    without = gate({HELD_OUT: held_out}, POLICY)
    assert "auc_vs_champion[matured_outcomes]" not in _names(without.checks)

    live = _world(rows=2000, seed=11)
    live_champion = live.model(0.3)
    matured_rows = live_champion < BANDS.approve_below_pd  # only the champion's approvals mature
    weaker = live.model(0.8)
    matured = EvaluationSet(
        y_default=live.y[matured_rows],
        champion_pd=live_champion[matured_rows],
        challenger_pd=weaker[matured_rows],
    )
    result = gate({HELD_OUT: held_out, MATURED_OUTCOMES: matured}, POLICY)
    assert _names(result.checks)[:2] == [
        "auc_vs_champion[held_out]",
        "auc_vs_champion[matured_outcomes]",
    ]
    # the held-out set's intervals do not depend on whether matured outcomes were given
    assert result.checks[0] == without.checks[0]
    assert _names(result.failed) == ["auc_vs_champion[matured_outcomes]"]
    assert "auc_vs_champion[matured_outcomes]" in (result.refusal() or "")


def test_the_same_inputs_give_the_same_intervals() -> None:
    world = _world()
    champion, challenger = world.model(0.3), world.model(0.4)
    data = _held_out(world, challenger, champion)
    first, second = gate({HELD_OUT: data}, POLICY), gate({HELD_OUT: data}, POLICY)
    assert first == second
    assert json.dumps(first.to_dict()) == json.dumps(second.to_dict())
    other_seed = gate({HELD_OUT: data}, GatePolicy(bootstrap_samples=200, seed=1))
    assert [c.value for c in other_seed.checks] == [c.value for c in first.checks]
    assert [c.interval for c in other_seed.checks] != [c.interval for c in first.checks]


def test_the_report_is_json_ready() -> None:
    world = _world()
    result = gate({HELD_OUT: _held_out(world, world.model(0.6), world.model(0.3))}, POLICY)
    report = json.loads(json.dumps(result.to_dict()))
    assert report["passed"] is False
    assert report["refusal"] == result.refusal()
    first = report["checks"][0]
    assert first["name"] == "auc_vs_champion[held_out]"
    assert first["threshold"] == {
        "low": -0.005,
        "high": None,
        "high_exclusive": False,
        "text": ">= -0.005",
    }
    assert len(first["interval"]) == 2
    assert set(first["measures"]) == {"challenger_auc", "champion_auc"}


def test_an_undefined_measure_fails() -> None:
    world = _world(rows=500)
    pd = world.model(0.3)
    nobody = EvaluationSet(world.y, pd, pd, np.zeros(world.y.size, dtype=bool), world.groups)
    result = gate({HELD_OUT: nobody}, POLICY)
    di = next(c for c in result.checks if c.name == "disparate_impact[gender]")
    assert not di.passed and di.value is None
    assert "disparate_impact[gender] undefined" in (result.refusal() or "")


def test_the_fast_bootstrap_measures_what_the_reference_functions_measure() -> None:
    world = _world(rows=800)
    approved = world.model(0.3) < BANDS.approve_below_pd
    everyone = np.arange(world.y.size)[None, :]
    reference = fairness_report(world.y, approved, world.groups)
    for attribute, labels in world.groups.items():
        ratio, gap = fairness_samples(world.y, approved, labels, everyone)
        assert ratio[0] == pytest.approx(reference[attribute]["disparate_impact_ratio"])
        assert gap[0] == pytest.approx(reference[attribute]["equal_opportunity_difference"])
    pd = np.round(world.model(0.3), 2)  # ties, averaged as roc_auc_score averages them
    assert auc_samples(world.y, pd, everyone)[0] == pytest.approx(roc_auc_score(world.y, pd))
    one_class = np.flatnonzero(world.y == 0)[None, :]
    assert np.isnan(auc_samples(world.y, pd, one_class)[0])
    assert roc_auc(world.y, pd) == pytest.approx(roc_auc_score(world.y, pd))
    assert roc_auc(world.y[world.y == 0], pd[world.y == 0]) is None


def test_inputs_are_checked() -> None:
    world = _world(rows=200)
    pd = world.model(0.3)
    with pytest.raises(ValueError, match="held_out"):
        gate({MATURED_OUTCOMES: EvaluationSet(world.y, pd, pd)})
    with pytest.raises(ValueError, match="protected attribute"):
        gate({HELD_OUT: EvaluationSet(world.y, pd, pd, pd < 0.15)})
    with pytest.raises(ValueError, match="shape"):
        EvaluationSet(world.y, pd[:-1], pd)
    with pytest.raises(ValueError, match="0 \\(repaid\\) or 1"):
        EvaluationSet(world.y * 2, pd, pd)
    with pytest.raises(ValueError, match="0 \\(repaid\\) or 1"):
        EvaluationSet(world.y * 0.5, pd, pd)
    data = EvaluationSet(world.y, pd, pd)
    with pytest.raises(ValueError):
        data.challenger_pd[0] = 0.5  # the set's arrays are read-only copies
