"""Scorecard scaling and cost-minimising decision bands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.common.decision import DecisionBands, Scorecard
from training.scorecard import BusinessCost, choose_bands


def _applications(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated PDs, outcomes drawn from them, and log-normal amounts around KES 50,000."""
    rng = np.random.default_rng(seed)
    pd = 1.0 / (1.0 + np.exp(-rng.normal(-2.5, 1.2, n)))
    y = rng.binomial(1, pd)
    amount = rng.lognormal(np.log(50_000.0), 0.8, n)
    return pd, y, amount


def _realised_cost(
    bands: DecisionBands, pd: np.ndarray, y: np.ndarray, amount: np.ndarray, cost: BusinessCost
) -> float:
    approve, review, decline = cost.outcome_costs(y, amount)
    decided = bands.band(pd)
    chosen = np.where(decided == "approve", approve, np.where(decided == "review", review, decline))
    return float(np.mean(chosen))


# --- scorecard ---------------------------------------------------------------------------------


def test_base_points_and_points_to_double_the_odds() -> None:
    card = Scorecard()
    # good:bad odds 50:1 is PD 1/51; 100:1 is 1/101; 25:1 is 1/26.
    np.testing.assert_array_equal(card.points(np.array([1 / 51, 1 / 101, 1 / 26])), [600, 620, 580])
    assert card.points(np.array([1 / 201]))[0] == 640


def test_points_stay_within_300_and_900_for_any_pd() -> None:
    card = Scorecard()
    pd = np.concatenate([[0.0, 1e-300, 1e-12, 0.5, 1.0 - 1e-12, 1.0], np.linspace(0, 1, 10_001)])
    points = card.points(pd)
    assert points.dtype.kind == "i"
    assert points.min() >= 300
    assert points.max() <= 900
    assert card.points(np.array([0.0]))[0] == 900
    assert card.points(np.array([1.0]))[0] == 300


def test_points_never_increase_with_pd() -> None:
    pd = np.unique(np.concatenate([np.linspace(0, 1, 200_001), np.geomspace(1e-15, 1, 50_001)]))
    assert np.all(np.diff(Scorecard().points(pd)) <= 0)


def test_probability_at_inverts_points() -> None:
    card = Scorecard()
    assert card.probability_at(np.array([600.0]))[0] == pytest.approx(1 / 51)
    assert card.probability_at(np.array([620.0]))[0] == pytest.approx(1 / 101)
    every_score = np.arange(300, 901)
    np.testing.assert_array_equal(card.points(card.probability_at(every_score)), every_score)
    assert np.all(np.diff(card.probability_at(every_score)) < 0)


def test_scorecard_round_trips_through_json() -> None:
    card = Scorecard(base_score=500.0, base_odds=20.0, points_to_double_odds=40.0)
    assert Scorecard.from_dict(json.loads(json.dumps(card.to_dict()))) == card


def test_scorecard_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Scorecard(points_to_double_odds=0.0)
    with pytest.raises(ValueError):
        Scorecard(min_score=900, max_score=300)
    with pytest.raises(ValueError):
        Scorecard().points(np.array([0.1, np.nan]))
    with pytest.raises(ValueError):
        Scorecard().points(np.array([1.5]))


# --- decision bands ----------------------------------------------------------------------------


def test_band_follows_the_thresholds_at_their_edges() -> None:
    bands = DecisionBands(approve_below_pd=0.05, decline_at_or_above_pd=0.2)
    pd = np.array([0.0, 0.049, 0.05, 0.1, 0.199, 0.2, 1.0])
    assert bands.band(pd).tolist() == [
        "approve",
        "approve",
        "review",
        "review",
        "review",
        "decline",
        "decline",
    ]
    assert DecisionBands(0.1, 0.1).band(np.array([0.09, 0.1])).tolist() == ["approve", "decline"]


def test_bands_refuse_unordered_thresholds_and_round_trip() -> None:
    with pytest.raises(ValueError):
        DecisionBands(approve_below_pd=0.3, decline_at_or_above_pd=0.2)
    with pytest.raises(ValueError):
        DecisionBands(approve_below_pd=-0.1, decline_at_or_above_pd=0.2)
    bands = DecisionBands(0.04, 0.3)
    assert DecisionBands.from_dict(json.loads(json.dumps(bands.to_dict()))) == bands


def test_chosen_bands_are_ordered_consistent_and_summarised() -> None:
    pd, y, amount = _applications(20_000, seed=11)
    cost = BusinessCost()
    bands, summary = choose_bands(pd, y, amount, cost)
    assert 0.0 <= bands.approve_below_pd <= bands.decline_at_or_above_pd <= 1.0
    decided = bands.band(pd)
    assert np.all((decided == "approve") == (pd < bands.approve_below_pd))
    assert np.all((decided == "decline") == (pd >= bands.decline_at_or_above_pd))
    assert summary["approve_rate"] == pytest.approx(np.mean(decided == "approve"))
    assert summary["review_rate"] == pytest.approx(np.mean(decided == "review"))
    assert summary["decline_rate"] == pytest.approx(np.mean(decided == "decline"))
    assert summary["approve_rate"] + summary["review_rate"] + summary["decline_rate"] == (
        pytest.approx(1.0)
    )
    assert summary["review_rate"] <= 0.2  # the default review capacity
    assert summary["expected_cost_kes"] == pytest.approx(_realised_cost(bands, pd, y, amount, cost))
    # Better than both trivial policies, and the approved book defaults less than the whole.
    assert summary["expected_cost_kes"] < summary["approve_all_cost_kes"]
    assert summary["expected_cost_kes"] < summary["decline_all_cost_kes"] == 0.0
    assert summary["approved_default_rate"] < y.mean()


def test_chosen_bands_beat_every_other_pair_tried() -> None:
    pd, y, amount = _applications(1_000, seed=12)
    cost = BusinessCost()
    # A grid as long as the data puts a candidate at every applicant: the search is exhaustive.
    _, summary = choose_bands(pd, y, amount, cost, max_review_rate=1.0, grid_size=1_000)
    candidates = np.concatenate([[0.0, 1.0], np.quantile(pd, np.linspace(0, 1, 60))])
    for low in candidates:
        for high in candidates[candidates >= low]:
            other = _realised_cost(DecisionBands(low, high), pd, y, amount, cost)
            assert summary["expected_cost_kes"] <= other + 1e-6


def test_without_review_the_cut_off_is_near_break_even() -> None:
    pd, y, amount = _applications(50_000, seed=13)
    cost = BusinessCost(review_cost_kes=1e9)
    bands, summary = choose_bands(pd, y, amount, cost)
    assert summary["review_rate"] == 0.0
    # Approving pays when pd * LGD < (1 - pd) * margin, i.e. pd < 0.18 / 0.83 ~ 0.217.
    break_even = cost.interest_margin / (cost.interest_margin + cost.loss_given_default)
    assert bands.approve_below_pd == pytest.approx(break_even, abs=0.04)


def test_cheaper_review_means_more_reviews() -> None:
    pd, y, amount = _applications(20_000, seed=14)
    _, dear = choose_bands(pd, y, amount, BusinessCost(review_cost_kes=20_000.0), max_review_rate=1)
    _, cheap = choose_bands(pd, y, amount, BusinessCost(review_cost_kes=1.0), max_review_rate=1)
    assert cheap["review_rate"] > dear["review_rate"] + 0.1


def test_review_capacity_is_respected() -> None:
    pd, y, amount = _applications(20_000, seed=15)
    cheap = BusinessCost(review_cost_kes=1.0)
    _, capped = choose_bands(pd, y, amount, cheap, max_review_rate=0.05)
    _, free = choose_bands(pd, y, amount, cheap, max_review_rate=1.0)
    assert capped["review_rate"] <= 0.05
    assert free["expected_cost_kes"] <= capped["expected_cost_kes"]


def test_choose_bands_refuses_bad_inputs() -> None:
    pd, y, amount = _applications(100, seed=16)
    with pytest.raises(ValueError):
        choose_bands(pd, y[:-1], amount)
    with pytest.raises(ValueError):
        choose_bands(pd, y, -amount)
    with pytest.raises(ValueError):
        choose_bands(pd, y, amount, max_review_rate=1.5)
    with pytest.raises(ValueError):
        BusinessCost(review_catch_rate=1.5)


# --- business cost from the file a SACCO edits -------------------------------------------------

COST_FILE = Path(__file__).resolve().parents[3] / "config" / "business_cost.toml"


def test_shipped_cost_file_holds_the_code_defaults() -> None:
    # The file is what SACCOs copy and edit: it must say exactly what the code assumes.
    assert BusinessCost.from_file(COST_FILE) == BusinessCost()
    text = COST_FILE.read_text()
    assert all(f"{name} =" in text for name in BusinessCost().to_dict())


def test_cost_file_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    path = tmp_path / "cost.toml"
    path.write_text("# our SACCO\nloss_given_default = 0.5\nreview_cost_kes = 150\n")
    cost = BusinessCost.from_file(path)
    assert cost == BusinessCost(loss_given_default=0.5, review_cost_kes=150.0)
    assert isinstance(cost.review_cost_kes, float)
    json.dumps(cost.to_dict())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("loss_given_defualt = 0.5\n", "unknown key 'loss_given_defualt'"),
        ("interest_margin = 'high'\n", "key 'interest_margin' must be a number"),
        ("review_cost_kes = true\n", "key 'review_cost_kes' must be a number"),
        ("review_cost_kes = nan\n", "key 'review_cost_kes' must be finite"),
        ("loss_given_default = 1.5\n", "loss_given_default must be within [0, 1]"),
        ("typical_loan_kes = 0\n", "typical_loan_kes must be positive"),
        ("[costs]\nloss_given_default = 0.5\n", "unknown key 'costs'"),
        ("loss_given_default = \n", "not a valid TOML file"),
    ],
)
def test_cost_file_refuses_unknown_keys_and_bad_values(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "cost.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        BusinessCost.from_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_missing_cost_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        BusinessCost.from_file(tmp_path / "absent.toml")
