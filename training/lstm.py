"""Multi-input LSTM with attention: default probability from repayment and mobile-money histories.

Three branches feed one small head: an MLP over static member features, an LSTM with additive
attention over the 24-month repayment sequence, and another over the weekly mobile-money sequence.
Histories are left-padded (missing old steps first) and masked: padded steps get exactly zero
attention and their raw values never reach the network, and a member with no observed step in a
branch gets a learned "empty history" vector instead of a NaN. Standardisation lives in buffers
inside the model, so the ONNX export takes raw feature values, exactly as serving sees them.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import roc_auc_score
from torch import nn

REPAYMENT_MONTHS = 24
ONNX_OPSET = 17
ONNX_INPUTS = ("static", "repayments", "repayment_mask", "mobile_money", "mobile_money_mask")
ONNX_OUTPUTS = ("probability", "repayment_attention", "mobile_money_attention")

# Standardised values are clipped: heavy-tailed shilling amounts must not saturate every gate.
_CLIP = 10.0
# Added to masked attention scores; softmax turns it into an exact zero weight in float32.
_MASKED_SCORE = -1e9


@dataclass
class SequenceInputs:
    """Model inputs for N members, row-aligned across the five arrays."""

    static: np.ndarray  # float32 [N, S]
    repayments: np.ndarray  # float32 [N, 24, R]
    repayment_mask: np.ndarray  # float32 [N, 24], 1 = observed
    mobile_money: np.ndarray  # float32 [N, W, C]
    mobile_money_mask: np.ndarray  # float32 [N, W], 1 = observed

    def __post_init__(self) -> None:
        self.static = np.ascontiguousarray(self.static, dtype=np.float32)
        self.repayments = np.ascontiguousarray(self.repayments, dtype=np.float32)
        self.repayment_mask = np.ascontiguousarray(self.repayment_mask, dtype=np.float32)
        self.mobile_money = np.ascontiguousarray(self.mobile_money, dtype=np.float32)
        self.mobile_money_mask = np.ascontiguousarray(self.mobile_money_mask, dtype=np.float32)
        n = self.static.shape[0]
        if self.static.ndim != 2:
            raise ValueError(f"static must be [N, S], got {self.static.shape}")
        if self.repayments.ndim != 3 or self.repayment_mask.shape != self.repayments.shape[:2]:
            raise ValueError(
                f"repayments {self.repayments.shape} and repayment_mask "
                f"{self.repayment_mask.shape} must be [N, T, R] and [N, T]"
            )
        if (
            self.mobile_money.ndim != 3
            or self.mobile_money_mask.shape != self.mobile_money.shape[:2]
        ):
            raise ValueError(
                f"mobile_money {self.mobile_money.shape} and mobile_money_mask "
                f"{self.mobile_money_mask.shape} must be [N, W, C] and [N, W]"
            )
        if self.repayments.shape[0] != n or self.mobile_money.shape[0] != n:
            raise ValueError(
                "static, repayments and mobile_money must have the same number of rows"
            )

    def __len__(self) -> int:
        return int(self.static.shape[0])

    def subset(self, index: np.ndarray) -> SequenceInputs:
        return SequenceInputs(
            static=self.static[index],
            repayments=self.repayments[index],
            repayment_mask=self.repayment_mask[index],
            mobile_money=self.mobile_money[index],
            mobile_money_mask=self.mobile_money_mask[index],
        )

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The five arrays as tensors in forward() order (shares memory with the arrays)."""
        return tuple(
            torch.from_numpy(a)
            for a in (
                self.static,
                self.repayments,
                self.repayment_mask,
                self.mobile_money,
                self.mobile_money_mask,
            )
        )


@dataclass
class LSTMParams:
    """Training settings; the defaults are sized for ~30k members on 2 CPU cores."""

    hidden: int = 32
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 4
    seed: int = 7
    threads: int = 2
    dropout: float = 0.1


def _location_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std ignoring NaN; a constant or empty column scales by 1."""
    if values.shape[0] == 0:
        return np.zeros(values.shape[1], np.float32), np.ones(values.shape[1], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are handled below
        mean = np.nanmean(values.astype(np.float64), axis=0)
        std = np.nanstd(values.astype(np.float64), axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class _SequenceBranch(nn.Module):
    """LSTM over a masked, left-padded sequence; attention context plus the most recent state."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        # The mask is an extra channel so the LSTM can tell padding from an observed zero.
        self.lstm = nn.LSTM(channels + 1, hidden, batch_first=True)
        self.project = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)
        self.empty = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, _ = self.lstm(torch.cat([x, mask.unsqueeze(-1)], dim=-1))
        scores = self.score(torch.tanh(self.project(outputs))).squeeze(-1)
        scores = scores.masked_fill(mask < 0.5, _MASKED_SCORE)
        # Multiplying by the mask only matters when every step is padding (softmax is uniform then).
        weights = torch.softmax(scores, dim=1) * mask
        context = torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)
        observed_any = mask.amax(dim=1, keepdim=True)
        context = context + (1.0 - observed_any) * self.empty
        # Left padding puts the most recent step last.
        return torch.cat([context, outputs[:, -1, :]], dim=-1), weights


class CreditLSTM(nn.Module):
    """Static MLP + repayment LSTM + mobile-money LSTM, each with attention, into one logit."""

    static_mean: torch.Tensor
    static_scale: torch.Tensor
    repayment_mean: torch.Tensor
    repayment_scale: torch.Tensor
    mobile_money_mean: torch.Tensor
    mobile_money_scale: torch.Tensor

    def __init__(
        self,
        static_features: int,
        repayment_channels: int,
        mobile_money_channels: int,
        mobile_money_weeks: int,
        hidden: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.static_features = static_features
        self.repayment_channels = repayment_channels
        self.mobile_money_channels = mobile_money_channels
        self.mobile_money_weeks = mobile_money_weeks
        self.register_buffer("static_mean", torch.zeros(static_features))
        self.register_buffer("static_scale", torch.ones(static_features))
        self.register_buffer("repayment_mean", torch.zeros(repayment_channels))
        self.register_buffer("repayment_scale", torch.ones(repayment_channels))
        self.register_buffer("mobile_money_mean", torch.zeros(mobile_money_channels))
        self.register_buffer("mobile_money_scale", torch.ones(mobile_money_channels))
        self.static_branch = nn.Sequential(
            nn.Linear(static_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.repayment_branch = _SequenceBranch(repayment_channels, hidden)
        self.mobile_money_branch = _SequenceBranch(mobile_money_channels, hidden)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(5 * hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.output = nn.Linear(hidden, 1)

    def fit_scaling(self, inputs: SequenceInputs) -> None:
        """Fit the standardisation buffers on training data (observed steps only)."""
        observed_repayments = inputs.repayments[inputs.repayment_mask > 0.5]
        observed_mobile_money = inputs.mobile_money[inputs.mobile_money_mask > 0.5]
        for name, values in (
            ("static", inputs.static),
            ("repayment", observed_repayments),
            ("mobile_money", observed_mobile_money),
        ):
            mean, scale = _location_scale(values)
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(mean))
            getattr(self, f"{name}_scale").copy_(torch.from_numpy(scale))

    def _standardise(
        self, x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """Scale, clip, and zero out missing values and padding (raw padding may hold anything)."""
        z = torch.clamp((x - mean) / scale, -_CLIP, _CLIP)
        return torch.where(torch.isnan(z) | ~keep, torch.zeros_like(z), z)

    def logits(
        self,
        static: torch.Tensor,
        repayments: torch.Tensor,
        repayment_mask: torch.Tensor,
        mobile_money: torch.Tensor,
        mobile_money_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logit [N] and both attention maps; training uses the logit for a stable loss."""
        static_z = self._standardise(
            static, self.static_mean, self.static_scale, torch.ones_like(static, dtype=torch.bool)
        )
        repayments_z = self._standardise(
            repayments,
            self.repayment_mean,
            self.repayment_scale,
            (repayment_mask > 0.5).unsqueeze(-1),
        )
        mobile_money_z = self._standardise(
            mobile_money,
            self.mobile_money_mean,
            self.mobile_money_scale,
            (mobile_money_mask > 0.5).unsqueeze(-1),
        )
        static_vector = self.static_branch(static_z)
        repayment_vector, repayment_attention = self.repayment_branch(repayments_z, repayment_mask)
        mobile_money_vector, mobile_money_attention = self.mobile_money_branch(
            mobile_money_z, mobile_money_mask
        )
        features = torch.cat([static_vector, repayment_vector, mobile_money_vector], dim=-1)
        logit = self.output(self.head(features)).squeeze(-1)
        return logit, repayment_attention, mobile_money_attention

    def forward(
        self,
        static: torch.Tensor,
        repayments: torch.Tensor,
        repayment_mask: torch.Tensor,
        mobile_money: torch.Tensor,
        mobile_money_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logit, repayment_attention, mobile_money_attention = self.logits(
            static, repayments, repayment_mask, mobile_money, mobile_money_mask
        )
        return torch.sigmoid(logit), repayment_attention, mobile_money_attention


@dataclass
class FittedLSTM:
    """A trained model with its per-epoch record (train_loss, valid_loss, valid_auc, seconds)."""

    model: CreditLSTM
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # index into history of the epoch whose weights were kept


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _evaluate(
    model: CreditLSTM, tensors: tuple[torch.Tensor, ...], y: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float]:
    """Validation loss and AUC; AUC is NaN when the labels hold one class only."""
    model.eval()
    n = y.shape[0]
    logits = torch.empty(n)
    with torch.no_grad():
        for batch in _batches(n, batch_size):
            logits[batch] = model.logits(*(t[batch] for t in tensors))[0]
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y).item()
    labels = y.numpy()
    auc = float(roc_auc_score(labels, logits.numpy())) if 0 < labels.sum() < n else math.nan
    return loss, auc


def fit_lstm(
    train: SequenceInputs,
    y_train: np.ndarray,
    valid: SequenceInputs,
    y_valid: np.ndarray,
    params: LSTMParams = LSTMParams(),  # noqa: B008 - frozen-by-convention defaults, never mutated
    *,
    progress: bool = False,
) -> FittedLSTM:
    """Train with Adam and early stopping on validation loss; the best epoch's weights are kept."""
    if len(train) != len(y_train) or len(valid) != len(y_valid):
        raise ValueError("inputs and labels must have the same number of rows")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        torch.manual_seed(params.seed)
        shuffle = torch.Generator().manual_seed(params.seed)
        model = CreditLSTM(
            static_features=train.static.shape[1],
            repayment_channels=train.repayments.shape[2],
            mobile_money_channels=train.mobile_money.shape[2],
            mobile_money_weeks=train.mobile_money.shape[1],
            hidden=params.hidden,
            dropout=params.dropout,
        )
        model.fit_scaling(train)
        y_train_t = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
        y_valid_t = torch.from_numpy(np.asarray(y_valid, dtype=np.float32))
        # Start the head at the base rate so early epochs learn signal, not the intercept.
        base_rate = float(np.clip(y_train_t.mean().item(), 1e-4, 1 - 1e-4))
        with torch.no_grad():
            model.output.bias.fill_(math.log(base_rate / (1 - base_rate)))
        optimizer = torch.optim.Adam(
            model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
        )
        train_tensors = train.tensors()
        valid_tensors = valid.tensors()
        n = len(train)

        history: list[dict[str, float]] = []
        best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
        bar = Progress(
            TextColumn("LSTM"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            disable=not progress,
            transient=False,
        )
        with bar:
            task = bar.add_task("epochs", total=params.epochs, status="")
            for epoch in range(params.epochs):
                started = time.perf_counter()
                model.train()
                order = torch.randperm(n, generator=shuffle)
                total = 0.0
                for batch in _batches(n, params.batch_size):
                    rows = order[batch]
                    logit = model.logits(*(t[rows] for t in train_tensors))[0]
                    loss = nn.functional.binary_cross_entropy_with_logits(logit, y_train_t[rows])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                    optimizer.step()
                    total += loss.item() * rows.shape[0]
                valid_loss, valid_auc = _evaluate(model, valid_tensors, y_valid_t)
                history.append(
                    {
                        "train_loss": total / n,
                        "valid_loss": valid_loss,
                        "valid_auc": valid_auc,
                        "seconds": time.perf_counter() - started,
                    }
                )
                bar.update(
                    task,
                    advance=1,
                    status=f"valid loss {valid_loss:.4f} auc {valid_auc:.4f}",
                )
                if valid_loss < best_loss:
                    best_loss, best_epoch = valid_loss, epoch
                    best_state = copy.deepcopy(model.state_dict())
                elif epoch - best_epoch >= params.patience:
                    break
        model.load_state_dict(best_state)
        model.eval()
        return FittedLSTM(model=model, history=history, best_epoch=best_epoch)
    finally:
        torch.set_num_threads(previous_threads)


def _run_native(
    fitted: FittedLSTM, inputs: SequenceInputs, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model = fitted.model
    model.eval()
    tensors = inputs.tensors()
    n = len(inputs)
    probability = np.empty(n, np.float32)
    repayment = np.empty(inputs.repayment_mask.shape, np.float32)
    mobile_money = np.empty(inputs.mobile_money_mask.shape, np.float32)
    with torch.no_grad():
        for batch in _batches(n, batch_size):
            p, a_r, a_m = model(*(t[batch] for t in tensors))
            probability[batch] = p.numpy()
            repayment[batch] = a_r.numpy()
            mobile_money[batch] = a_m.numpy()
    return probability, repayment, mobile_money


def predict_lstm(fitted: FittedLSTM, inputs: SequenceInputs, batch_size: int = 4096) -> np.ndarray:
    """Probabilities of default [N] from the native torch model in eval mode."""
    return _run_native(fitted, inputs, batch_size)[0]


def attention(fitted: FittedLSTM, inputs: SequenceInputs) -> tuple[np.ndarray, np.ndarray]:
    """Attention over repayment months [N, 24] and mobile-money weeks [N, W]; padding gets 0."""
    _, repayment, mobile_money = _run_native(fitted, inputs, 4096)
    return repayment, mobile_money


def export_lstm_onnx(fitted: FittedLSTM, path: Path) -> None:
    """Export to ONNX (opset 17, dynamic batch) with the TorchScript exporter.

    The dynamo exporter needs onnxscript, which the project does not ship; the TorchScript one
    maps nn.LSTM to the native ONNX LSTM op and matches torch to float32 precision.
    """
    model = copy.deepcopy(fitted.model).eval()
    weeks = model.mobile_money_weeks
    example = (
        torch.zeros(2, model.static_features),
        torch.zeros(2, REPAYMENT_MONTHS, model.repayment_channels),
        torch.ones(2, REPAYMENT_MONTHS),
        torch.zeros(2, weeks, model.mobile_money_channels),
        torch.ones(2, weeks),
    )
    dynamic_axes = {name: {0: "batch"} for name in (*ONNX_INPUTS, *ONNX_OUTPUTS)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Expected while tracing nn.LSTM: its shape checks become constants, and the exporter
        # warns about batch size, which only matters with an explicit initial state (none here).
        warnings.filterwarnings(
            "ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.modules\.rnn"
        )
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        # Chosen on purpose: the dynamo exporter needs onnxscript, which is not a dependency.
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=list(ONNX_INPUTS),
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def onnx_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """A CPU ONNX Runtime session sized for the 2-core budget."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_feed(inputs: SequenceInputs) -> dict[str, np.ndarray]:
    """The ONNX input feed for a batch, keyed by the exported input names."""
    return {
        "static": inputs.static,
        "repayments": inputs.repayments,
        "repayment_mask": inputs.repayment_mask,
        "mobile_money": inputs.mobile_money,
        "mobile_money_mask": inputs.mobile_money_mask,
    }


def predict_onnx(path: Path, inputs: SequenceInputs) -> np.ndarray:
    """Probabilities of default [N] from the exported model under ONNX Runtime (CPU)."""
    session = onnx_session(path)
    n = len(inputs)
    probability = np.empty(n, np.float32)
    for batch in _batches(n, 4096):
        feed = {name: array[batch] for name, array in onnx_feed(inputs).items()}
        probability[batch] = session.run(["probability"], feed)[0]
    return probability
