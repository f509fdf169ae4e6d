"""The sequence model learns, masks padding, stays finite on empty histories, exports faithfully.

Data is a small fixed-seed world built here: default risk rises with a static feature and with late
repayments in the member's three most recent observed months; histories are left-padded and the
padding holds NaN and junk to prove it never reaches the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.lstm import (
    ONNX_INPUTS,
    ONNX_OUTPUTS,
    FittedLSTM,
    LSTMParams,
    SequenceInputs,
    attention,
    export_lstm_onnx,
    fit_lstm,
    onnx_feed,
    onnx_session,
    predict_lstm,
    predict_onnx,
)

MONTHS = 24
WEEKS = 10  # not 13 on purpose: the week count must come from the data
STATIC, REPAYMENT_CHANNELS, MOBILE_MONEY_CHANNELS = 5, 3, 4
# One thread: a model this small gains nothing from two, and two OpenMP threads spin-wait badly
# when other processes share the cores (a 1 s fit became 60 s in a parallel test run).
PARAMS = LSTMParams(hidden=16, epochs=8, batch_size=256, learning_rate=5e-3, patience=3, threads=1)


def make_members(n: int, seed: int) -> tuple[SequenceInputs, np.ndarray]:
    rng = np.random.default_rng(seed)
    static = rng.normal(size=(n, STATIC)).astype(np.float32)
    months = rng.integers(0, MONTHS + 1, n)
    months[: n // 20] = 0  # some members have no repayment history at all
    repayment_mask = (np.arange(MONTHS)[None, :] >= MONTHS - months[:, None]).astype(np.float32)
    late = rng.random((n, MONTHS)) < 0.25
    repayments = rng.normal(size=(n, MONTHS, REPAYMENT_CHANNELS)).astype(np.float32)
    repayments[:, :, 0] = late * rng.integers(1, 60, (n, MONTHS))  # days late
    repayments[repayment_mask == 0] = np.nan
    weeks = rng.integers(0, WEEKS + 1, n)
    mobile_money_mask = (np.arange(WEEKS)[None, :] >= WEEKS - weeks[:, None]).astype(np.float32)
    mobile_money = rng.lognormal(6, 1, size=(n, WEEKS, MOBILE_MONEY_CHANNELS)).astype(np.float32)
    mobile_money[mobile_money_mask == 0] = 1e6  # junk that must be ignored
    recent_late = (late[:, -3:] & (repayment_mask[:, -3:] > 0)).sum(axis=1)
    logit = -2.0 + 1.2 * static[:, 0] + 1.0 * recent_late
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    inputs = SequenceInputs(static, repayments, repayment_mask, mobile_money, mobile_money_mask)
    return inputs, y


@pytest.fixture(scope="module")
def data() -> tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray]:
    train, y_train = make_members(4000, seed=11)
    valid, y_valid = make_members(1500, seed=12)
    return train, y_train, valid, y_valid


@pytest.fixture(scope="module")
def fitted(data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray]) -> FittedLSTM:
    train, y_train, valid, y_valid = data
    return fit_lstm(train, y_train, valid, y_valid, PARAMS)


@pytest.fixture(scope="module")
def onnx_path(fitted: FittedLSTM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lstm") / "lstm.onnx"
    export_lstm_onnx(fitted, path)
    return path


def test_learns_the_signal_and_keeps_the_best_epoch(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray], fitted: FittedLSTM
) -> None:
    _, _, valid, y_valid = data
    probability = predict_lstm(fitted, valid)
    auc = roc_auc_score(y_valid, probability)
    assert auc > 0.75
    # The repayment branch must add to what the static feature alone gives (about 0.74 here).
    assert auc > roc_auc_score(y_valid, valid.static[:, 0]) + 0.03
    losses = [epoch["valid_loss"] for epoch in fitted.history]
    assert fitted.best_epoch == int(np.argmin(losses))
    assert set(fitted.history[0]) >= {"train_loss", "valid_loss", "valid_auc"}
    # The kept weights are the best epoch's, not the last one's.
    eps = 1e-7
    clipped = np.clip(probability.astype(np.float64), eps, 1 - eps)
    loss = -np.mean(y_valid * np.log(clipped) + (1 - y_valid) * np.log(1 - clipped))
    assert loss == pytest.approx(losses[fitted.best_epoch], abs=1e-4)


def test_onnx_matches_native_on_1000_rows(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray],
    fitted: FittedLSTM,
    onnx_path: Path,
) -> None:
    rows = data[2].subset(np.arange(1000))
    native_repayment, native_mobile_money = attention(fitted, rows)
    outputs = onnx_session(onnx_path).run(list(ONNX_OUTPUTS), onnx_feed(rows))
    probability, repayment, mobile_money = outputs
    assert np.abs(probability - predict_lstm(fitted, rows)).max() < 1e-5
    assert np.abs(repayment - native_repayment).max() < 1e-5
    assert np.abs(mobile_money - native_mobile_money).max() < 1e-5
    assert np.abs(predict_onnx(onnx_path, rows) - predict_lstm(fitted, rows)).max() < 1e-5


def test_onnx_graph_has_named_io_and_a_dynamic_batch(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray],
    fitted: FittedLSTM,
    onnx_path: Path,
) -> None:
    session = onnx_session(onnx_path)
    assert [i.name for i in session.get_inputs()] == list(ONNX_INPUTS)
    assert [o.name for o in session.get_outputs()] == list(ONNX_OUTPUTS)
    valid = data[2]
    for n in (1, 1000):
        rows = valid.subset(np.arange(n))
        probability, repayment, mobile_money = session.run(None, onnx_feed(rows))
        assert probability.shape == (n,)
        assert repayment.shape == (n, MONTHS)
        assert mobile_money.shape == (n, WEEKS)
        assert np.abs(probability - predict_lstm(fitted, rows)).max() < 1e-5


def test_attention_covers_observed_steps_only(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray], fitted: FittedLSTM
) -> None:
    valid = data[2]
    for weights, mask in zip(
        attention(fitted, valid),
        (valid.repayment_mask, valid.mobile_money_mask),
        strict=True,
    ):
        observed = mask.sum(axis=1) > 0
        assert observed.any() and (~observed).any()
        assert np.all(weights[mask == 0] == 0.0)
        assert np.allclose(weights[observed].sum(axis=1), 1.0, atol=1e-5)
        assert np.all(weights >= 0.0)


def test_members_without_history_get_finite_predictions(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray],
    fitted: FittedLSTM,
    onnx_path: Path,
) -> None:
    rows = data[2].subset(np.arange(50))
    rows.repayment_mask[:] = 0.0
    rows.mobile_money_mask[:] = 0.0
    rows.repayments[:] = np.nan
    rows.mobile_money[:] = np.inf
    for probability in (predict_lstm(fitted, rows), predict_onnx(onnx_path, rows)):
        assert np.all(np.isfinite(probability))
        assert np.all((probability > 0) & (probability < 1))
    repayment, mobile_money = attention(fitted, rows)
    assert not repayment.any() and not mobile_money.any()


def test_padded_values_never_change_a_prediction(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray], fitted: FittedLSTM
) -> None:
    rows = data[2].subset(np.arange(300))
    before = predict_lstm(fitted, rows)
    rows.repayments[rows.repayment_mask == 0] = -123.0
    rows.mobile_money[rows.mobile_money_mask == 0] = np.nan
    np.testing.assert_array_equal(predict_lstm(fitted, rows), before)


def test_same_seed_same_predictions(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray],
) -> None:
    train, y_train, valid, y_valid = data
    small = LSTMParams(hidden=8, epochs=2, batch_size=256, seed=3, threads=1)
    head = np.arange(1000)
    runs = [
        fit_lstm(train.subset(head), y_train[head], valid, y_valid, small, progress=progress)
        for progress in (False, True)
    ]
    np.testing.assert_array_equal(predict_lstm(runs[0], valid), predict_lstm(runs[1], valid))
    metrics = ("train_loss", "valid_loss", "valid_auc")
    assert [[e[m] for m in metrics] for e in runs[0].history] == [
        [e[m] for m in metrics] for e in runs[1].history
    ]


def test_sequence_inputs_subset_and_shape_checks(
    data: tuple[SequenceInputs, np.ndarray, SequenceInputs, np.ndarray],
) -> None:
    valid = data[2]
    part = valid.subset(np.array([3, 1]))
    assert len(part) == 2
    np.testing.assert_array_equal(part.repayments[1], valid.repayments[1])
    with pytest.raises(ValueError, match="repayment_mask"):
        SequenceInputs(
            valid.static,
            valid.repayments,
            valid.repayment_mask[:, :12],
            valid.mobile_money,
            valid.mobile_money_mask,
        )
