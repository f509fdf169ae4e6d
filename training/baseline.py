"""The simple models: the optbinning scorecard and a plain L2 logistic regression, with ONNX.

The scorecard bins each tabular feature optimally (monotone WoE) and fits a logistic regression
on the WoE values: what a bureau analyst would build. The plain logistic regression on
standardised inputs is simpler still; model selection (`training.selection`) ships a richer model
only when it beats that one by more than the noise.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OptScorecard
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def fit_logistic_scorecard(
    x_train: np.ndarray, y_train: np.ndarray, feature_names: tuple[str, ...]
) -> OptScorecard:
    frame = pd.DataFrame(x_train, columns=list(feature_names))
    binning = BinningProcess(
        variable_names=list(feature_names),
        binning_fit_params={name: {"monotonic_trend": "auto_asc_desc"} for name in feature_names},
    )
    scorecard = OptScorecard(
        binning_process=binning,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scorecard.fit(frame, np.asarray(y_train).astype(int))
    return scorecard


def predict_logistic_scorecard(
    scorecard: OptScorecard, x: np.ndarray, feature_names: tuple[str, ...]
) -> np.ndarray:
    frame = pd.DataFrame(x, columns=list(feature_names))
    return np.asarray(scorecard.predict_proba(frame))[:, 1]


#: Inverse L2 strengths tried on standardised inputs; four values on inner folds cannot overfit.
LOGISTIC_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


def fit_logistic_regression(
    x_train: np.ndarray, y_train: np.ndarray, *, folds: int = 3, seed: int = 0
) -> Pipeline:
    """The plain model every richer one must beat: standardise, then L2 logistic regression.

    The penalty is chosen from `LOGISTIC_CS` by inner stratified k-fold log loss and the model is
    refitted with it as a plain `LogisticRegression`, which skl2onnx converts exactly. No class
    weights: they move the intercept, not the ranking, and calibration follows anyway.
    """
    x = np.asarray(x_train, dtype=np.float64)
    y = np.asarray(y_train).astype(int)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scaled = StandardScaler().fit_transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter at the weakest penalty
        search = LogisticRegressionCV(
            Cs=list(LOGISTIC_CS), cv=splitter, scoring="neg_log_loss", max_iter=2000
        ).fit(scaled, y)
        best_c = float(np.ravel(search.C_)[0])
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("logistic", LogisticRegression(C=best_c, max_iter=2000)),
            ]
        ).fit(x, y)


def predict_logistic_regression(model: Pipeline, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(np.asarray(x, dtype=np.float64)))[:, 1]


def export_logistic_regression_onnx(model: Pipeline, n_features: int, path: Path) -> None:
    """Input `tabular` float64 [N, F]; output `probabilities` [N, 2] (column 1 = default).

    Double precision so the ONNX probabilities match scikit-learn's to ~1e-12, not float32's 1e-7.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    onnx_model = convert_sklearn(
        model,
        initial_types=[("tabular", DoubleTensorType([None, n_features]))],
        options={LogisticRegression: {"zipmap": False}},
        target_opset=15,
    )
    path.write_bytes(onnx_model.SerializeToString())


def scorecard_steps(
    scorecard: OptScorecard, feature_names: tuple[str, ...]
) -> tuple[float, list[tuple[int, float, float]]]:
    """The fitted scorecard as log-odds = intercept + sum of steps (feature, threshold, jump).

    optbinning assigns a value x to bin = number of splits <= x (np.digitize) and maps the bin to
    its WoE; the estimator is linear in WoE. So each split s of feature j adds
    coef_j * (WoE of the bin above s - WoE of the bin below) once x_j >= s. The WoE values are read
    back through optbinning's own transform at a point inside each bin, not re-derived. Only for
    NaN-free inputs (the special and missing bins are not encoded).
    """
    process = scorecard.binning_process_
    estimator = scorecard.estimator_
    variables = list(process.variable_names)
    coefs = dict(zip(variables, np.ravel(estimator.coef_), strict=True))
    intercept = float(np.ravel(estimator.intercept_)[0])
    steps: list[tuple[int, float, float]] = []
    for name in variables:
        binning = process.get_binned_variable(name)
        splits = np.asarray(binning.splits, dtype=np.float64)
        inside = np.concatenate(([splits[0] - 1.0], splits)) if splits.size else np.array([0.0])
        woe = np.asarray(binning.transform(inside, metric="woe"), dtype=np.float64)
        coef = float(coefs[name])
        intercept += coef * float(woe[0])
        column = feature_names.index(name)
        steps.extend(
            (column, float(split), coef * float(jump))
            for split, jump in zip(splits, np.diff(woe), strict=True)
        )
    return intercept, steps


def export_scorecard_onnx(
    scorecard: OptScorecard, feature_names: tuple[str, ...], path: Path
) -> None:
    """Input `tabular` float64 [N, F]; output `probabilities` [N, 2] (column 1 = default).

    optbinning has no ONNX converter; the scorecard is a sum of steps (see `scorecard_steps`),
    i.e. Gather -> GreaterOrEqual -> Cast -> MatMul -> Add -> Sigmoid, built here by hand.
    """
    from onnx import TensorProto, helper, numpy_helper

    intercept, steps = scorecard_steps(scorecard, feature_names)
    steps = steps or [(0, 0.0, 0.0)]  # no split anywhere: a constant, kept as one null step
    columns = np.array([s[0] for s in steps], dtype=np.int64)
    thresholds = np.array([s[1] for s in steps], dtype=np.float64)
    jumps = np.array([s[2] for s in steps], dtype=np.float64).reshape(-1, 1)
    constants = [
        numpy_helper.from_array(columns, "columns"),
        numpy_helper.from_array(thresholds, "thresholds"),
        numpy_helper.from_array(jumps, "jumps"),
        numpy_helper.from_array(np.array([intercept], dtype=np.float64), "intercept"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float64), "one"),
    ]
    nodes = [
        helper.make_node("Gather", ["tabular", "columns"], ["picked"], axis=1),
        helper.make_node("GreaterOrEqual", ["picked", "thresholds"], ["above"]),
        helper.make_node("Cast", ["above"], ["above_f"], to=TensorProto.DOUBLE),
        helper.make_node("MatMul", ["above_f", "jumps"], ["summed"]),
        helper.make_node("Add", ["summed", "intercept"], ["log_odds"]),
        helper.make_node("Sigmoid", ["log_odds"], ["p_default"]),
        helper.make_node("Sub", ["one", "p_default"], ["p_repaid"]),
        helper.make_node("Concat", ["p_repaid", "p_default"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "logistic_scorecard",
        [helper.make_tensor_value_info("tabular", TensorProto.DOUBLE, [None, len(feature_names)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
