"""Model selection on folds: a richer model ships only if it beats the simple one beyond noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.ensemble import cross_fitted_ensemble, fit_ensemble
from training.gbm import FoldGBMParams, fit_gbm_cv, predict_gbm, rare_default_weight
from training.pipeline import ensemble_check, ensemble_refusal
from training.scorecard import BusinessCost
from training.selection import Comparison, Selection, fold_ids, select_model
from training.tabular import CANDIDATES, TabularData, TabularSettings, run_tabular


def _p(score: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-score))


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes from known PDs, a weak score (true logit plus noise) and fold ids (5 folds)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.0, 1.2, n)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-logit)))
    weak = logit + rng.normal(0.0, 2.0, n)
    return y, weak, rng.permutation(np.arange(n) % 5)


def test_fold_ids_cover_every_row_once() -> None:
    assert fold_ids([np.array([2, 0]), np.array([1, 3])], 4).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError):
        fold_ids([np.array([0, 1]), np.array([1, 2])], 3)
    with pytest.raises(ValueError):
        fold_ids([np.array([0])], 2)


def test_per_fold_metrics_and_margin_match_a_hand_computation() -> None:
    y, weak, folds = _world(5_000, seed=1)
    rng = np.random.default_rng(9)
    strong = weak + 3.0 * (y - 0.5) + rng.normal(0, 1, y.size)  # clearly better everywhere
    selection = select_model({"logistic_regression": _p(weak), "gbm": _p(strong)}, y, folds)
    auc = {
        name: [roc_auc_score(y[folds == k], p[folds == k]) for k in range(5)]
        for name, p in (("logistic_regression", weak), ("gbm", strong))
    }
    gains = np.subtract(auc["gbm"], auc["logistic_regression"])
    assert selection.winner == "gbm"
    assert selection.folds == 5
    assert selection.candidates["gbm"].per_fold["auc"] == pytest.approx(auc["gbm"])
    assert selection.candidates["gbm"].mean["auc"] == pytest.approx(np.mean(auc["gbm"]))
    assert selection.candidates["gbm"].sd["auc"] == pytest.approx(np.std(auc["gbm"], ddof=1))
    assert selection.margin == pytest.approx(gains.mean())
    assert selection.standard_error == pytest.approx(gains.std(ddof=1) / np.sqrt(5))
    assert selection.candidates["gbm"].pooled["auc"] == pytest.approx(roc_auc_score(y, strong))
    json.dumps(selection.to_dict(), allow_nan=False)


def test_a_gain_within_the_noise_does_not_ship() -> None:
    y, weak, folds = _world(5_000, seed=2)
    # Better on fold 0, a little worse on fold 1, equal elsewhere: positive mean, large spread.
    lucky = weak.copy()
    lucky[folds == 0] += 3.0 * (y[folds == 0] - 0.5)
    lucky[folds == 1] -= 1.0 * (y[folds == 1] - 0.5)
    selection = select_model({"logistic_regression": _p(weak), "lightgbm": _p(lucky)}, y, folds)
    comparison = selection.comparisons["lightgbm"]
    assert comparison.mean_gain > 0
    assert comparison.mean_gain <= comparison.standard_error
    assert not comparison.beats_simple
    assert (selection.winner, selection.margin, selection.standard_error) == (
        "logistic_regression",
        0.0,
        0.0,
    )


def test_identical_predictions_keep_the_simple_model() -> None:
    y, weak, folds = _world(2_000, seed=3)
    selection = select_model(
        {"logistic_regression": _p(weak), "lightgbm": _p(weak.copy())}, y, folds
    )
    assert selection.winner == "logistic_regression"
    assert selection.comparisons["lightgbm"].mean_gain == 0.0


def test_best_of_several_beaters_wins() -> None:
    y, weak, folds = _world(5_000, seed=4)
    better = weak + 1.0 * (y - 0.5)
    best = weak + 3.0 * (y - 0.5)
    selection = select_model(
        {"logistic_regression": _p(weak), "scorecard": _p(better), "lightgbm": _p(best)},
        y,
        folds,
    )
    assert selection.comparisons["scorecard"].beats_simple
    assert selection.winner == "lightgbm"


def test_select_model_refuses_nonsense() -> None:
    y, weak, folds = _world(500, seed=5)
    weak = _p(weak)
    with pytest.raises(ValueError, match="simple model"):
        select_model({"lightgbm": weak}, y, folds)
    with pytest.raises(ValueError, match="higher is better"):
        select_model({"logistic_regression": weak}, y, folds, metric="brier")
    with pytest.raises(ValueError, match="2 folds"):
        select_model({"logistic_regression": weak}, y, np.zeros_like(y))


# --- rare defaults -----------------------------------------------------------------------------


def test_rare_defaults_are_up_weighted_moderately() -> None:
    assert rare_default_weight(np.array([1] * 30 + [0] * 70)) == 1.0
    assert rare_default_weight(np.array([1] * 1 + [0] * 99)) == pytest.approx(np.sqrt(99))


def test_fold_gbm_stops_early_on_inner_folds_and_learns() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3_000, 3))
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - 3.5))))  # ~5% defaults
    settings = FoldGBMParams(max_rounds=400)
    fitted = fit_gbm_cv(x, y, ("a", "b", "c"), settings)
    assert len(fitted.trials) == len(settings.grid)
    assert fitted.best_iteration == min(fitted.trials, key=lambda t: t["value"])["rounds"]
    assert fitted.best_iteration < settings.max_rounds  # stopped early
    assert fitted.params["scale_pos_weight"] == pytest.approx(rare_default_weight(y))
    assert roc_auc_score(y, predict_gbm(fitted, x)) > 0.85


def _table(x: np.ndarray, y: np.ndarray) -> TabularData:
    features = pd.DataFrame({f"x{i}": x[:, i] for i in range(x.shape[1])})
    return TabularData(
        path=Path("synthetic.csv"),
        features=features,
        kinds=dict.fromkeys(features.columns, "numeric"),
        y=y,
        protected=pd.DataFrame(index=features.index),
        target="y",
        positive="1",
        amount_kes=None,
        amount_column=None,
    )


def test_linear_world_with_rare_defaults_ships_the_logistic_regression() -> None:
    # Issue 9: on a ~2% default book LightGBM lost to a plain logistic regression. When the truth
    # is linear, the selection keeps the logistic regression.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4_000, 4))
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-(x @ [0.9, -0.6, 0.4, 0.0] - 4.4))))
    assert 0.01 < y.mean() < 0.04
    run = run_tabular(_table(x, y), BusinessCost(), TabularSettings(folds=3))
    assert set(run.oof) == set(CANDIDATES)
    assert run.selection.winner == "logistic_regression"
    assert not any(c.beats_simple for c in run.selection.comparisons.values())


def test_interaction_world_ships_lightgbm() -> None:
    # Risk lives in an interaction no linear model can express: LightGBM must win, and clearly.
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3_000, 2))
    y = rng.binomial(1, np.where(x[:, 0] * x[:, 1] > 0, 0.5, 0.05))
    run = run_tabular(_table(x, y), BusinessCost(), TabularSettings(folds=3))
    assert run.selection.winner == "lightgbm"
    assert run.selection.margin > 0.1
    assert run.selection.margin > run.selection.standard_error


def _validation(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes, a good score (true logit plus a little noise) and pure noise."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.5, 1.3, n)
    y = rng.binomial(1, _p(logit))
    return y, _p(logit + rng.normal(0.0, 0.5, n)), rng.uniform(0.01, 0.99, n)


def _choice(lightgbm_gain: float, se: float = 0.002) -> Selection:
    """A development-fold choice whose LightGBM comparison is given (the rest is not read)."""
    comparison = Comparison(lightgbm_gain, se, lightgbm_gain > se)
    return Selection(
        "logistic_regression",
        "logistic_regression",
        "auc",
        0.0,
        0.0,
        5,
        {},
        {"lightgbm": comparison},
    )


def test_an_ensemble_the_plain_model_beats_on_validation_folds_does_not_ship() -> None:
    # LightGBM held its own on the development folds, but the ensemble leans on a useless
    # sequence model: its weight, cross-fitted, cannot rescue it from noise-only LSTM PDs when
    # the GBM itself is noise too, while the plain model is good
    y, good, noise = _validation(4000, 1)
    rng = np.random.default_rng(2)
    check = ensemble_check(y, good, rng.uniform(0.01, 0.99, len(y)), noise, seed=0)
    refusal = ensemble_refusal(_choice(lightgbm_gain=0.0), check)
    assert refusal is not None and "validation folds" in refusal
    assert check.comparisons["ensemble"].mean_gain < -check.comparisons["ensemble"].standard_error


def test_the_ensemble_ships_when_it_is_not_beaten_and_lightgbm_held_its_own() -> None:
    y, good, noise = _validation(4000, 3)
    rng = np.random.default_rng(8)
    plain = _p(np.log(good / (1 - good)) + rng.normal(0.0, 0.3, len(y)))  # a little worse
    check = ensemble_check(y, plain, good, noise, seed=0)
    assert check.comparisons["ensemble"].mean_gain > -check.comparisons["ensemble"].standard_error
    assert ensemble_refusal(_choice(lightgbm_gain=0.001), check) is None


def test_a_tie_goes_to_the_plain_model_when_lightgbm_lost_on_the_development_folds() -> None:
    y, good, noise = _validation(4000, 4)
    check = ensemble_check(y, good, good, noise, seed=0)  # the ensemble only ties
    refusal = ensemble_refusal(_choice(lightgbm_gain=-0.02), check)
    assert refusal is not None and "LightGBM" in refusal
    # ...but an ensemble that wins back a clear margin on the validation folds ships
    y, good, noise = _validation(4000, 5)
    rng = np.random.default_rng(6)
    weaker = _p(np.log(good / (1 - good)) + rng.normal(0.0, 2.0, len(y)))
    check = ensemble_check(y, weaker, good, noise, seed=0)
    assert check.comparisons["ensemble"].beats_simple
    assert ensemble_refusal(_choice(lightgbm_gain=-0.02), check) is None


def test_the_ensemble_weight_is_cross_fitted_not_fitted_on_the_rows_it_is_judged_on() -> None:
    y, good, noise = _validation(2000, 7)
    folds = np.arange(len(y)) % 5
    out = cross_fitted_ensemble(good, noise, y, folds)
    for fold in range(5):
        held = folds == fold
        weights = fit_ensemble(good[~held], noise[~held], y[~held])
        np.testing.assert_allclose(out[held], weights.combine(good[held], noise[held]))
