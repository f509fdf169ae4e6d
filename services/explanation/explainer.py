"""The explanation domain: TreeSHAP for the GBM, attention for the LSTM, plain-language reasons.

A decision is explained by the model that made it: its `model_version` names a bundle folder
under the bundle root, loaded once and kept in a small cache. A version not under the root (the
challenger in shadow, a rolled-back champion, a decision replayed from the topics, on a machine
that never had its bundle) is downloaded from the MLflow registry that holds it; only a version
that exists nowhere is a dead letter. A tabular bundle (trained on a
lender's own table) is explained over its own encoded columns, with reasons per source column.
The GBM part is exact TreeSHAP in log-odds, over the features the scoring service recorded in
the decision, so contributions plus the expected value equal the booster's raw score: scoring
computes them once (LightGBM's native contributions, batched) and carries them in the decision;
a decision made before they were carried gets them here (`shap.TreeExplainer` on the bundle's
native `gbm.txt`). The LSTM part is the attention the scoring
service already put in the decision; when it concentrates on a few months (or weeks) one more
reason says so in words.
Everything here is synchronous and CPU-bound: `ExplainerPool` runs it off the event loop.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import lightgbm
import numpy as np
import shap

from services.common.bundle import BundleError, ModelBundle, load_bundle
from services.common.errors import InvalidEvent
from services.common.features import MOBILE_MONEY_WEEKS, REPAYMENT_MONTHS, TABULAR_FEATURES
from services.common.model_registry import ModelNotFound
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision, ReasonCode
from services.common.protos.alama.events.v1.explanations_pb2 import (
    CreditExplanation,
    Explainer,
    FeatureContribution,
)
from services.common.reasons import reason_codes
from services.common.tabular_bundle import (
    TabularBundle,
    is_tabular_bundle,
    load_tabular_bundle,
)
from services.explanation.metrics import (
    BUNDLE_DOWNLOADS,
    BUNDLE_LOADS,
    EXPLAIN_SECONDS,
    EXPLANATIONS,
)

#: Fixed forever: changing it would change every explanation's event id.
EXPLANATION_NAMESPACE = uuid.UUID("0b7e3c52-9d4f-5a61-8e2b-e1a2a0c0de02")

UNKNOWN_MODEL_VERSION = "unknown_model_version"
UNUSABLE_MODEL_BUNDLE = "unusable_model_bundle"
MALFORMED_FEATURES = "malformed_features"
MALFORMED_ATTENTION = "malformed_attention"
MALFORMED_CONTRIBUTIONS = "malformed_contributions"
MISSING_FIELD = "missing_field"

#: Attention "concentrates" when this many neighbouring steps hold at least this share of it.
ATTENTION_WINDOW = 3
ATTENTION_MIN_SHARE = 0.5
#: Steps at the window's edges holding less than this share of the attention are left out.
ATTENTION_EDGE_SHARE = 0.05

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def explanation_id(decision_id: str) -> str:
    """The explanation's event id: one decision, one id, so replays deduplicate downstream."""
    return str(uuid.uuid5(EXPLANATION_NAMESPACE, decision_id))


@dataclass(frozen=True)
class TreeModel:
    """A bundle's native GBM and its TreeSHAP explainer, over the features it was trained on."""

    version: str
    booster: lightgbm.Booster
    explainer: shap.TreeExplainer
    columns: np.ndarray  # the booster's features' positions in TABULAR_FEATURES
    feature_names: tuple[str, ...] = TABULAR_FEATURES
    method: Explainer = Explainer.EXPLAINER_TREE_SHAP

    def reasons(
        self, contributions: np.ndarray, values: np.ndarray, limit: int
    ) -> list[ReasonCode]:
        return reason_codes(contributions, values, limit=limit)

    @classmethod
    def from_booster(cls, version: str, booster: lightgbm.Booster) -> TreeModel:
        names = tuple(booster.feature_name())
        unknown = [n for n in names if n not in TABULAR_FEATURES]
        if unknown:
            raise BundleError(f"the GBM of {version} uses features this code lacks: {unknown}")
        columns = np.array([TABULAR_FEATURES.index(n) for n in names], dtype=np.int64)
        return cls(version, booster, shap.TreeExplainer(booster), columns)

    @property
    def read_columns(self) -> np.ndarray:
        """Where the features the model reads sit in `feature_names` (the bundle's order)."""
        return self.columns

    def contributions(self, tabular: np.ndarray) -> tuple[np.ndarray, float]:
        """[N, len(TABULAR_FEATURES)] log-odds contributions (0 for a feature the model does not
        use) and the expected log-odds (the bias)."""
        x = np.asarray(tabular, dtype=np.float64).reshape(-1, len(TABULAR_FEATURES))
        explained = self.explainer(x[:, self.columns])
        values = np.asarray(explained.values, dtype=np.float64)
        if values.ndim == 3:  # one slice per class in some shap versions: class 1 is default
            values = values[..., -1]
        full = np.zeros((len(x), len(TABULAR_FEATURES)))
        full[:, self.columns] = values
        expected = np.asarray(self.explainer.expected_value, dtype=np.float64).reshape(-1)[-1]
        return full, float(expected)


@dataclass(frozen=True)
class LinearModel:
    """A bundle that ships the plain logistic regression: its exact contributions are each
    feature's weight times its distance from the training mean, around the intercept."""

    version: str
    bundle: ModelBundle
    feature_names: tuple[str, ...] = TABULAR_FEATURES
    method: Explainer = Explainer.EXPLAINER_LINEAR_TERMS

    @property
    def read_columns(self) -> np.ndarray:
        return self.bundle.columns

    def contributions(self, tabular: np.ndarray) -> tuple[np.ndarray, float]:
        x = np.asarray(tabular, dtype=np.float64).reshape(-1, len(TABULAR_FEATURES))
        return self.bundle.contributions(x), self.bundle.expected_log_odds

    def reasons(
        self, contributions: np.ndarray, values: np.ndarray, limit: int
    ) -> list[ReasonCode]:
        return reason_codes(contributions, values, limit=limit)


@dataclass(frozen=True)
class TabularModel:
    """A bundle trained on a lender's own table: contributions over its encoded columns (the
    features its decisions record), reasons per source column in that column's words."""

    version: str
    bundle: TabularBundle

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.bundle.feature_names

    @property
    def method(self) -> Explainer:
        if self.bundle.booster is not None:
            return Explainer.EXPLAINER_TREE_SHAP
        return Explainer.EXPLAINER_LINEAR_TERMS

    @property
    def read_columns(self) -> np.ndarray:
        return np.arange(len(self.bundle.feature_names))

    def contributions(self, rows: np.ndarray) -> tuple[np.ndarray, float]:
        return self.bundle.contributions(rows)

    def reasons(
        self, contributions: np.ndarray, values: np.ndarray, limit: int
    ) -> list[ReasonCode]:
        return self.bundle.reasons(contributions, values, limit=limit)


ExplainedModel = TreeModel | LinearModel | TabularModel


def load_explained_model(folder: Path) -> ExplainedModel:
    """Verify a bundle (format, features, every file's hash) and take its tabular model."""
    if is_tabular_bundle(folder):
        tabular = load_tabular_bundle(folder)
        return TabularModel(tabular.version, tabular)
    bundle = load_bundle(folder)
    if bundle.booster is None:
        return LinearModel(bundle.version, bundle)
    return TreeModel.from_booster(bundle.version, bundle.booster)


class ModelSource(Protocol):
    def get(self, version: str) -> ExplainedModel:
        """The model of `version`; raises `InvalidEvent` when it cannot be had."""
        ...

    def cached(self, version: str) -> bool: ...


class BundleFinder(Protocol):
    """Where a registered bundle is (`services.common.model_registry.ModelLocator`)."""

    def folder(self, bundle_version: str) -> Path:
        """The version's folder, downloaded when missing; `ModelNotFound` when it exists
        nowhere, `RegistryUnavailable` (an outage, retried) when the registry cannot answer."""
        ...

    def describe(self) -> str: ...


class BundleCache:
    """The last few bundles used, by version, loaded from `<root>/<version>` on first use, or
    from the registry (`finder`) when the root lacks them."""

    def __init__(
        self,
        root: Path | str,
        max_cached: int = 3,
        loader: Callable[[Path], ExplainedModel] = load_explained_model,
        finder: BundleFinder | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_cached = max(1, max_cached)
        self.loader = loader
        self.finder = finder
        self._models: OrderedDict[str, ExplainedModel] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, version: str) -> bool:
        with self._lock:
            return version in self._models

    def get(self, version: str) -> ExplainedModel:
        with self._lock:
            model = self._models.get(version)
            if model is not None:
                self._models.move_to_end(version)
                return model
            model = self._load(version)
            self._models[version] = model
            while len(self._models) > self.max_cached:
                self._models.popitem(last=False)
            return model

    def _load(self, version: str) -> ExplainedModel:
        if not _VERSION.match(version):
            raise InvalidEvent(UNKNOWN_MODEL_VERSION, f"{version!r} is not a model version")
        folder = self.root / version
        if not (folder / "manifest.json").exists():
            folder = self._fetch(version)
        try:
            model = self.loader(folder)
        except Exception as exc:  # whatever breaks loading, the bundle cannot explain
            raise InvalidEvent(UNUSABLE_MODEL_BUNDLE, f"bundle {version!r}: {exc}") from exc
        if model.version != version:  # e.g. the `current` link, or a renamed folder
            raise InvalidEvent(
                UNKNOWN_MODEL_VERSION, f"folder {version!r} holds bundle {model.version!r}"
            )
        BUNDLE_LOADS.inc()
        return model

    def _fetch(self, version: str) -> Path:
        """The folder of a version the root lacks, from the registry; an outage propagates
        (the decision is retried, never dead-lettered for it)."""
        if self.finder is None:
            raise InvalidEvent(
                UNKNOWN_MODEL_VERSION,
                f"model version {version!r} is not under {self.root} (no registry configured)",
            )
        try:
            folder = self.finder.folder(version)
        except ModelNotFound as exc:
            raise InvalidEvent(
                UNKNOWN_MODEL_VERSION,
                f"model version {version!r} exists nowhere: not under {self.root}, and not"
                f" registered in {self.finder.describe()} ({exc})",
            ) from exc
        BUNDLE_DOWNLOADS.inc()
        return folder


def tabular_row(
    decision: CreditDecision, names: Sequence[str] = TABULAR_FEATURES, *, checked: bool = False
) -> np.ndarray:
    """The decision's model inputs in the model's feature order; raises when they are unusable
    (unless `checked`: they were found usable already)."""
    features = decision.features
    if checked:
        return np.array([features[name] for name in names], dtype=np.float64)
    missing = [name for name in names if name not in features]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidEvent(MALFORMED_FEATURES, f"{len(missing)} features missing: {shown}")
    row = np.array([features[name] for name in names], dtype=np.float64)
    if not np.all(np.isfinite(row)):
        bad = [n for n, v in zip(names, row, strict=True) if not np.isfinite(v)]
        raise InvalidEvent(MALFORMED_FEATURES, f"non-finite values: {', '.join(bad[:5])}")
    return row


def carried_contributions(decision: CreditDecision, model: ExplainedModel) -> np.ndarray | None:
    """The contributions scoring computed for this decision, over `model.feature_names` (0 for a
    feature the model does not read); None for a decision made before scoring carried them."""
    if not decision.contributions:
        return None
    columns = model.read_columns
    if len(decision.contributions) != len(columns):
        raise InvalidEvent(
            MALFORMED_CONTRIBUTIONS,
            f"{len(decision.contributions)} contributions for a model of {len(columns)} features",
        )
    full = np.zeros(len(model.feature_names))
    full[columns] = decision.contributions
    return full


def _check_attention(name: str, weights: Sequence[float], steps: int) -> None:
    if len(weights) not in (0, steps):
        raise InvalidEvent(MALFORMED_ATTENTION, f"{name} has {len(weights)} steps, not {steps}")
    arr = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidEvent(MALFORMED_ATTENTION, f"{name} must be finite and non-negative")


def validate(decision: CreditDecision) -> None:
    """Everything about one decision that would make it unexplainable, short of its bundle
    (which features it must carry is the bundle's to say: `tabular_row`)."""
    for field in ("decision_id", "application_id", "model_version"):
        if not getattr(decision, field):
            raise InvalidEvent(MISSING_FIELD, f"the decision has no {field}")
    bad = [name for name, value in decision.features.items() if not np.isfinite(value)]
    if bad:
        raise InvalidEvent(MALFORMED_FEATURES, f"non-finite values: {', '.join(sorted(bad)[:5])}")
    _check_attention("repayment_attention", decision.repayment_attention, REPAYMENT_MONTHS)
    _check_attention("mobile_money_attention", decision.mobile_money_attention, MOBILE_MONEY_WEEKS)
    if not np.all(np.isfinite(np.asarray(decision.contributions, dtype=np.float64))):
        raise InvalidEvent(MALFORMED_CONTRIBUTIONS, "contributions must be finite")


@dataclass(frozen=True)
class AttentionFocus:
    """Where a sequence's attention concentrates: steps `start`..`end` (oldest first)."""

    start: int
    end: int
    share: float  # of the sequence's attention inside the window
    steps: int

    @property
    def lift(self) -> float:
        """How many times more attention the window holds than an even spread would give it."""
        return self.share * self.steps / (self.end - self.start + 1)


def attention_focus(
    weights: Sequence[float],
    *,
    window: int = ATTENTION_WINDOW,
    min_share: float = ATTENTION_MIN_SHARE,
) -> AttentionFocus | None:
    """The window of `window` neighbouring steps with the most attention, if it holds enough."""
    arr = np.asarray(weights, dtype=np.float64)
    total = float(arr.sum()) if arr.size else 0.0
    if arr.size == 0 or total <= 0:
        return None
    share = arr / total
    width = min(window, arr.size)
    sums = np.convolve(share, np.ones(width), mode="valid")
    start = int(np.argmax(sums))  # the earliest of equal windows
    if sums[start] < min_share:
        return None
    end = start + width - 1
    while end > start and share[end] < ATTENTION_EDGE_SHARE:
        end -= 1
    while start < end and share[start] < ATTENTION_EDGE_SHARE:
        start += 1
    return AttentionFocus(start, end, float(share[start : end + 1].sum()), int(arr.size))


def _months(n: int) -> str:
    return "1 month" if n == 1 else f"{n} months"


def repayment_attention_text(focus: AttentionFocus) -> str:
    """Step 0 is 24 months back and the last step last month (oldest first)."""
    newest, oldest = focus.steps - focus.end, focus.steps - focus.start
    if newest == oldest:
        when = "of last month" if newest == 1 else f"from {newest} months ago"
    elif newest == 1:
        when = f"of the last {_months(oldest)}"
    else:
        when = f"from {newest} to {oldest} months ago"
    return f"your repayment record {when} weighed most in the assessment"


def mobile_money_attention_text(focus: AttentionFocus) -> str:
    """Step 0 is the 13th week back and the last step the past 7 days (oldest first)."""
    newest, oldest = focus.steps - 1 - focus.end, focus.steps - 1 - focus.start
    if newest == 0:
        when = "of the last week" if oldest == 0 else f"of the last {oldest + 1} weeks"
    else:
        when = f"from {newest} to {oldest + 1} weeks ago"
    return f"your mobile-money activity {when} weighed most in the assessment"


def attention_reason(
    repayment_attention: Sequence[float], mobile_money_attention: Sequence[float]
) -> ReasonCode | None:
    """One sentence about the LSTM's focus, for the sequence where it concentrates most.

    Attention says where the model looked, not which way it pushed the risk, so the sentence is
    neutral and its contribution 0 (it is not a log-odds contribution).
    """
    candidates = []
    for code, weights, text in (
        ("repayment_attention", repayment_attention, repayment_attention_text),
        ("mobile_money_attention", mobile_money_attention, mobile_money_attention_text),
    ):
        focus = attention_focus(weights)
        if focus is not None:
            candidates.append((focus.lift, code, text(focus)))
    if not candidates:
        return None
    _lift, code, description = max(candidates, key=lambda c: c[0])
    return ReasonCode(code=code, description=description, contribution=0.0)


@dataclass(frozen=True)
class Outcome:
    """Exactly one of explanation or error, for one decision."""

    decision: CreditDecision
    explanation: CreditExplanation | None = None
    error: InvalidEvent | None = None


class DecisionExplainer:
    """Explains decisions with the model that made each of them."""

    def __init__(self, models: ModelSource, *, top_reasons: int = 4) -> None:
        self.models = models
        self.top_reasons = top_reasons

    def check(self, decision: CreditDecision) -> None:
        """Raise `InvalidEvent` unless the decision can be explained (loads its bundle once)."""
        validate(decision)
        self.check_against_model(decision)

    def check_against_model(self, decision: CreditDecision) -> None:
        """`check`, less what `validate` checks: what the decision's bundle needs of it."""
        model = self.models.get(decision.model_version)
        tabular_row(decision, model.feature_names)
        carried_contributions(decision, model)

    def explain(
        self,
        decisions: Sequence[CreditDecision],
        *,
        explained_at: datetime,
        checked: bool = False,
    ) -> list[Outcome]:
        """One outcome per decision, in order. The contributions scoring carried are used as
        they are; TreeSHAP runs, once per model version, only for decisions without them.
        `checked`: every decision passed `check` already (the Kafka path), so it is validated
        once, not twice."""
        outcomes: list[Outcome | None] = [None] * len(decisions)
        groups: dict[str, list[int]] = {}
        for i, decision in enumerate(decisions):
            if not checked:
                try:
                    validate(decision)
                except InvalidEvent as exc:
                    outcomes[i] = Outcome(decision, error=exc)
                    continue
            groups.setdefault(decision.model_version, []).append(i)
        for version, members in groups.items():
            try:
                model = self.models.get(version)
            except InvalidEvent as exc:
                for i in members:
                    outcomes[i] = Outcome(decisions[i], error=exc)
                continue
            rows: list[tuple[int, np.ndarray, np.ndarray | None]] = []
            for i in members:
                try:
                    row = tabular_row(decisions[i], model.feature_names, checked=checked)
                    rows.append((i, row, carried_contributions(decisions[i], model)))
                except InvalidEvent as exc:
                    outcomes[i] = Outcome(decisions[i], error=exc)
            older = [k for k, (_i, _row, carried) in enumerate(rows) if carried is None]
            computed: dict[int, np.ndarray] = {}
            if older:  # decisions from before scoring carried its contributions
                values, _expected = model.contributions(np.vstack([rows[k][1] for k in older]))
                computed = dict(zip(older, values, strict=True))
            for k, (i, row, carried) in enumerate(rows):
                contributions = carried if carried is not None else computed[k]
                outcomes[i] = Outcome(
                    decisions[i],
                    explanation=self._explanation(
                        decisions[i], model, row, contributions, explained_at
                    ),
                )
        return [o for o in outcomes if o is not None]

    def _explanation(
        self,
        decision: CreditDecision,
        model: ExplainedModel,
        values: np.ndarray,
        contributions: np.ndarray,
        explained_at: datetime,
    ) -> CreditExplanation:
        order = np.argsort(-np.abs(contributions), kind="stable")
        reasons = model.reasons(contributions, values, self.top_reasons)
        focus = attention_reason(decision.repayment_attention, decision.mobile_money_attention)
        if focus is not None:
            reasons.append(focus)
        explanation = CreditExplanation(
            decision_id=decision.decision_id,
            application_id=decision.application_id,
            tenant_id=decision.tenant_id,
            model_version=decision.model_version,
            contributions=[
                FeatureContribution(
                    feature=model.feature_names[j],
                    value=float(values[j]),
                    contribution=float(contributions[j]),
                    explainer=model.method,
                )
                for j in order
            ],
            reasons=reasons,
            repayment_attention=list(decision.repayment_attention),
            mobile_money_attention=list(decision.mobile_money_attention),
        )
        explanation.explained_at.FromDatetime(explained_at)
        return explanation


class ExplainerPool:
    """Runs the explainer in worker threads so the event loop never waits on SHAP or loading."""

    def __init__(self, explainer: DecisionExplainer, *, threads: int = 1) -> None:
        self.explainer = explainer
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="explanation")

    async def check(self, decision: CreditDecision) -> None:
        validate(decision)  # cheap: on the loop
        if self.explainer.models.cached(decision.model_version):
            self.explainer.check_against_model(decision)  # the bundle is loaded: a lookup
        else:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.pool, self.explainer.check_against_model, decision)

    async def explain(
        self,
        decisions: Sequence[CreditDecision],
        *,
        explained_at: datetime,
        path: str,
        checked: bool = False,
    ) -> list[Outcome]:
        started = time.perf_counter()
        outcomes = await asyncio.get_running_loop().run_in_executor(
            self.pool,
            lambda: self.explainer.explain(
                list(decisions), explained_at=explained_at, checked=checked
            ),
        )
        EXPLAIN_SECONDS.labels(path).observe(time.perf_counter() - started)
        EXPLANATIONS.labels(path).inc(sum(o.explanation is not None for o in outcomes))
        return outcomes

    def close(self) -> None:
        self.pool.shutdown(wait=True)
