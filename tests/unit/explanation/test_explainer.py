"""The explanation domain on a small real LightGBM: TreeSHAP, reasons, attention, ids, errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from services.common.errors import InvalidEvent
from services.common.features import MOBILE_MONEY_WEEKS, REPAYMENT_MONTHS, TABULAR_FEATURES
from services.common.model_registry import ModelNotFound, RegistryUnavailable
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import Explainer
from services.common.reasons import describe, reason_codes
from services.common.retries import is_transient
from services.explanation.explainer import (
    BundleCache,
    DecisionExplainer,
    TreeModel,
    attention_focus,
    attention_reason,
    explanation_id,
)

VERSION = "unit-1"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RISKY = ("rp_late_count_6m", "loan_to_income", "mm_betting_share_30d")


def synthetic_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.uniform(0.0, 1.0, size=(n, len(TABULAR_FEATURES)))
    x[:, TABULAR_FEATURES.index("rp_late_count_6m")] = rng.integers(0, 6, size=n)
    x[:, TABULAR_FEATURES.index("loan_to_income")] = rng.uniform(0.1, 4.0, size=n)
    return x


@pytest.fixture(scope="module")
def model() -> TreeModel:
    """A small booster trained on synthetic rows where a few features raise the risk."""
    rng = np.random.default_rng(7)
    x = synthetic_rows(rng, 2000)
    logit = (
        -2.0
        + 0.6 * x[:, TABULAR_FEATURES.index("rp_late_count_6m")]
        + 0.5 * x[:, TABULAR_FEATURES.index("loan_to_income")]
        + 1.5 * x[:, TABULAR_FEATURES.index("mm_betting_share_30d")]
        - 1.0 * x[:, TABULAR_FEATURES.index("tenure_months")]
    )
    y = rng.uniform(size=len(x)) < 1.0 / (1.0 + np.exp(-logit))
    data = lightgbm.Dataset(x, label=y.astype(float), feature_name=list(TABULAR_FEATURES))
    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 7, "learning_rate": 0.2, "verbose": -1},
        data,
        num_boost_round=30,
    )
    return TreeModel.from_booster(VERSION, booster)


class Models:
    """A model source holding a fixed set of models, as the bundle cache would."""

    def __init__(self, *models: TreeModel) -> None:
        self.models = {m.version: m for m in models}

    def get(self, version: str) -> TreeModel:
        if version not in self.models:
            raise InvalidEvent("unknown_model_version", version)
        return self.models[version]

    def cached(self, version: str) -> bool:
        return version in self.models


def decision_for(row: np.ndarray, i: int = 0, **fields: object) -> CreditDecision:
    decision = CreditDecision(
        decision_id=str(uuid.UUID(int=i + 1)),
        application_id=f"A{i}",
        member_id=f"M{i}",
        model_version=VERSION,
        features={name: float(v) for name, v in zip(TABULAR_FEATURES, row, strict=True)},
        repayment_attention=[1.0 / REPAYMENT_MONTHS] * REPAYMENT_MONTHS,
        mobile_money_attention=[1.0 / MOBILE_MONEY_WEEKS] * MOBILE_MONEY_WEEKS,
    )
    for name, value in fields.items():
        field = getattr(decision, name)
        if isinstance(value, list):
            del field[:]
            field.extend(value)
        else:
            setattr(decision, name, value)
    return decision


@pytest.fixture
def rows() -> np.ndarray:
    return synthetic_rows(np.random.default_rng(11), 25)


def test_shap_contributions_add_up_to_the_boosters_log_odds(
    model: TreeModel, rows: np.ndarray
) -> None:
    contributions, expected = model.contributions(rows)
    raw = model.booster.predict(rows, raw_score=True)
    assert contributions.shape == (len(rows), len(TABULAR_FEATURES))
    np.testing.assert_allclose(contributions.sum(axis=1) + expected, raw, atol=1e-9)
    native = np.asarray(model.booster.predict(rows, pred_contrib=True))
    np.testing.assert_allclose(contributions, native[:, :-1], atol=1e-9)
    assert np.abs(contributions[:, TABULAR_FEATURES.index("rp_late_count_6m")]).max() > 0.1


def test_explanations_list_every_feature_by_strength(model: TreeModel, rows: np.ndarray) -> None:
    decisions = [decision_for(row, i) for i, row in enumerate(rows)]
    outcomes = DecisionExplainer(Models(model)).explain(decisions, explained_at=AT)
    contributions, _ = model.contributions(rows)
    assert len(outcomes) == len(decisions)
    for i, (decision, outcome) in enumerate(zip(decisions, outcomes, strict=True)):
        explanation = outcome.explanation
        assert explanation is not None and outcome.error is None
        assert explanation.decision_id == decision.decision_id
        assert explanation.application_id == decision.application_id
        assert explanation.model_version == VERSION
        assert explanation.explained_at.ToDatetime(tzinfo=UTC) == AT
        assert sorted(c.feature for c in explanation.contributions) == sorted(TABULAR_FEATURES)
        strengths = [abs(c.contribution) for c in explanation.contributions]
        assert strengths == sorted(strengths, reverse=True)
        for c in explanation.contributions:
            j = TABULAR_FEATURES.index(c.feature)
            assert c.explainer == Explainer.EXPLAINER_TREE_SHAP
            assert c.value == decision.features[c.feature]
            assert c.contribution == pytest.approx(contributions[i, j], abs=1e-12)
        assert list(explanation.repayment_attention) == list(decision.repayment_attention)
        assert list(explanation.mobile_money_attention) == list(decision.mobile_money_attention)


def test_reasons_are_the_risk_raising_features_in_plain_words(
    model: TreeModel, rows: np.ndarray
) -> None:
    risky = rows[0].copy()
    risky[TABULAR_FEATURES.index("rp_late_count_6m")] = 5
    risky[TABULAR_FEATURES.index("loan_to_income")] = 3.9
    risky[TABULAR_FEATURES.index("mm_betting_share_30d")] = 0.95
    (outcome,) = DecisionExplainer(Models(model), top_reasons=3).explain(
        [decision_for(risky)], explained_at=AT
    )
    assert outcome.explanation is not None
    reasons = list(outcome.explanation.reasons)  # uniform attention: TreeSHAP reasons only
    contributions, _ = model.contributions(risky[None, :])
    assert reasons == reason_codes(contributions[0], risky, limit=3)  # the decision's words
    assert 0 < len(reasons) <= 3
    assert {r.code for r in reasons} <= set(TABULAR_FEATURES)
    assert "rp_late_count_6m" in {r.code for r in reasons}
    for reason in reasons:
        assert reason.contribution > 0
        j = TABULAR_FEATURES.index(reason.code)
        assert reason.description == describe(reason.code, risky[j])
        assert "_" not in reason.description and reason.code not in reason.description
    assert "5 late repayments in the last 6 months" in [r.description for r in reasons]
    strengths = [r.contribution for r in reasons]
    assert strengths == sorted(strengths, reverse=True)


def test_no_reasons_when_nothing_raises_the_risk(model: TreeModel, rows: np.ndarray) -> None:
    safe = rows[0].copy()
    for name in RISKY:
        safe[TABULAR_FEATURES.index(name)] = 0.0
    safe[TABULAR_FEATURES.index("tenure_months")] = 1.0
    (outcome,) = DecisionExplainer(Models(model)).explain([decision_for(safe)], explained_at=AT)
    assert outcome.explanation is not None
    contributions, _ = model.contributions(safe[None, :])
    expected = reason_codes(contributions[0], safe)
    assert list(outcome.explanation.reasons) == expected
    assert all(r.contribution > 0 for r in outcome.explanation.reasons)


def peaked(steps: int, start: int, width: int, mass: float = 0.8) -> list[float]:
    weights = np.full(steps, (1.0 - mass) / (steps - width))
    weights[start : start + width] = mass / width
    return weights.tolist()


def test_attention_reason_only_when_attention_concentrates() -> None:
    uniform_rep = [1.0 / REPAYMENT_MONTHS] * REPAYMENT_MONTHS
    uniform_mm = [1.0 / MOBILE_MONEY_WEEKS] * MOBILE_MONEY_WEEKS
    assert attention_focus(uniform_rep) is None
    assert attention_reason(uniform_rep, uniform_mm) is None
    assert attention_reason([], []) is None
    assert attention_reason([0.0] * REPAYMENT_MONTHS, []) is None
    # positions 20..22 of 24 (oldest first) are 4, 3 and 2 months back
    reason = attention_reason(peaked(REPAYMENT_MONTHS, 20, 3), uniform_mm)
    assert reason is not None and reason.code == "repayment_attention"
    assert reason.description == (
        "your repayment record from 2 to 4 months ago weighed most in the assessment"
    )
    assert reason.contribution == 0.0  # attention is not a log-odds contribution
    recent = attention_reason(peaked(REPAYMENT_MONTHS, 21, 3), uniform_mm)
    assert recent is not None
    assert recent.description == (
        "your repayment record of the last 3 months weighed most in the assessment"
    )
    single = attention_reason(peaked(REPAYMENT_MONTHS, 12, 1, mass=0.9), uniform_mm)
    assert single is not None
    assert single.description == (
        "your repayment record from 12 months ago weighed most in the assessment"
    )
    weekly = attention_reason(uniform_rep, peaked(MOBILE_MONEY_WEEKS, 10, 3, mass=0.9))
    assert weekly is not None and weekly.code == "mobile_money_attention"
    assert weekly.description == (
        "your mobile-money activity of the last 3 weeks weighed most in the assessment"
    )
    older = attention_reason(uniform_rep, peaked(MOBILE_MONEY_WEEKS, 4, 3, mass=0.9))
    assert older is not None
    assert older.description == (
        "your mobile-money activity from 6 to 9 weeks ago weighed most in the assessment"
    )
    # spread a little more than evenly over two halves: still not concentrated
    assert attention_focus(peaked(REPAYMENT_MONTHS, 0, 12, mass=0.6)) is None


def test_attention_reason_follows_the_explained_decision(
    model: TreeModel, rows: np.ndarray
) -> None:
    decision = decision_for(rows[0], repayment_attention=peaked(REPAYMENT_MONTHS, 20, 3))
    (outcome,) = DecisionExplainer(Models(model)).explain([decision], explained_at=AT)
    assert outcome.explanation is not None
    reasons = list(outcome.explanation.reasons)
    assert reasons[-1].code == "repayment_attention"
    assert sum(r.code.endswith("_attention") for r in reasons) == 1


def test_explanation_ids_are_deterministic(model: TreeModel, rows: np.ndarray) -> None:
    first = explanation_id("d-1")
    assert first == explanation_id("d-1") and uuid.UUID(first).version == 5
    assert first != explanation_id("d-2")
    assert first != "d-1"  # never the decision's own id: they are different events


def test_a_bad_decision_is_an_error_and_the_batch_goes_on(
    model: TreeModel, rows: np.ndarray
) -> None:
    good = decision_for(rows[0], 0)
    unknown = decision_for(rows[1], 1, model_version="nowhere-1")
    missing = decision_for(rows[2], 2)
    del missing.features["loan_to_income"]
    not_finite = decision_for(rows[3], 3)
    not_finite.features["deposits_kes"] = float("nan")
    short = decision_for(rows[4], 4, repayment_attention=[0.5, 0.5])
    outcomes = DecisionExplainer(Models(model)).explain(
        [good, unknown, missing, not_finite, short], explained_at=AT
    )
    assert outcomes[0].explanation is not None
    reasons = [o.error.reason if o.error else None for o in outcomes]
    assert reasons == [
        None,
        "unknown_model_version",
        "malformed_features",
        "malformed_features",
        "malformed_attention",
    ]
    assert outcomes[2].error is not None and "loan_to_income" in outcomes[2].error.detail
    with pytest.raises(InvalidEvent) as raised:
        DecisionExplainer(Models(model)).check(unknown)
    assert raised.value.reason == "unknown_model_version"


def write_manifest(root: Path, folder: str, version: str) -> None:
    (root / folder).mkdir()
    (root / folder / "manifest.json").write_text(json.dumps({"version": version}))


def test_bundle_cache_loads_each_version_once_and_keeps_a_few(
    model: TreeModel, tmp_path: Path
) -> None:
    loads: list[str] = []

    def loader(folder: Path) -> TreeModel:
        loads.append(folder.name)
        version = json.loads((folder / "manifest.json").read_text())["version"]
        return TreeModel(version, model.booster, model.explainer, model.columns)

    for v in ("v1", "v2", "v3"):
        write_manifest(tmp_path, v, v)
    write_manifest(tmp_path, "renamed", "v9")
    cache = BundleCache(tmp_path, max_cached=2, loader=loader)
    assert cache.get("v1").version == "v1"
    assert cache.get("v1").version == "v1" and loads == ["v1"]
    cache.get("v2")
    cache.get("v1")  # v1 is now the most recent, v2 the least
    cache.get("v3")
    assert cache.cached("v1") and cache.cached("v3") and not cache.cached("v2")
    cache.get("v2")
    assert loads == ["v1", "v2", "v3", "v2"]
    for bad in ("v4", "../v1", "", "renamed"):
        with pytest.raises(InvalidEvent) as raised:
            cache.get(bad)
        assert raised.value.reason == "unknown_model_version", bad

    def broken(folder: Path) -> TreeModel:
        raise ValueError("gbm.txt is not a model")

    with pytest.raises(InvalidEvent) as raised:
        BundleCache(tmp_path, loader=broken).get("v1")
    assert raised.value.reason == "unusable_model_bundle"


def test_carried_contributions_are_used_and_older_decisions_are_recomputed(
    model: TreeModel, rows: np.ndarray
) -> None:
    native = np.asarray(model.booster.predict(rows, pred_contrib=True))[:, :-1]  # as scoring
    carried = [decision_for(row, i, contributions=native[i].tolist()) for i, row in enumerate(rows)]
    older = [decision_for(row, i) for i, row in enumerate(rows)]  # before the field existed
    explainer = DecisionExplainer(Models(model))
    for new, old in zip(
        explainer.explain(carried, explained_at=AT),
        explainer.explain(older, explained_at=AT),
        strict=True,
    ):
        assert new.explanation is not None and old.explanation is not None
        assert [c.feature for c in new.explanation.contributions] == [
            c.feature for c in old.explanation.contributions
        ]
        np.testing.assert_allclose(
            [c.contribution for c in new.explanation.contributions],
            [c.contribution for c in old.explanation.contributions],
            rtol=0,
            atol=1e-9,
        )
        assert [r.code for r in new.explanation.reasons] == [
            r.code for r in old.explanation.reasons
        ]
    # what is carried is what is explained: no TreeSHAP for a decision that brings its own
    doubled = decision_for(rows[0], 0, contributions=(2 * native[0]).tolist())
    (outcome,) = explainer.explain([doubled], explained_at=AT)
    assert outcome.explanation is not None
    shown = {c.feature: c.contribution for c in outcome.explanation.contributions}
    assert [shown[name] for name in TABULAR_FEATURES] == (2 * native[0]).tolist()


def test_malformed_carried_contributions_are_errors(model: TreeModel, rows: np.ndarray) -> None:
    short = decision_for(rows[0], 0, contributions=[0.1, 0.2])
    nan = decision_for(rows[1], 1, contributions=[float("nan")] * len(TABULAR_FEATURES))
    outcomes = DecisionExplainer(Models(model)).explain([short, nan], explained_at=AT)
    assert [o.error.reason if o.error else None for o in outcomes] == [
        "malformed_contributions",
        "malformed_contributions",
    ]
    with pytest.raises(InvalidEvent, match="2 contributions"):
        DecisionExplainer(Models(model)).check(short)


async def test_a_checked_decision_is_validated_once(
    model: TreeModel, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.explanation import explainer as module

    validated: list[str] = []
    real = module.validate

    def counting(decision: CreditDecision) -> None:
        validated.append(decision.decision_id)
        real(decision)

    monkeypatch.setattr(module, "validate", counting)
    pool = module.ExplainerPool(DecisionExplainer(Models(model)))
    try:
        decisions = [decision_for(row, i) for i, row in enumerate(rows[:3])]
        for decision in decisions:
            await pool.check(decision)  # the Kafka handler
        outcomes = await pool.explain(decisions, explained_at=AT, path="kafka", checked=True)
    finally:
        pool.close()
    assert all(o.explanation is not None for o in outcomes)
    assert validated == [d.decision_id for d in decisions]


class Registry:
    """A model registry that holds some versions: 'downloading' one writes its folder."""

    def __init__(self, root: Path, held: set[str], *, down: bool = False) -> None:
        self.root = root
        self.held = held
        self.down = down
        self.asked: list[str] = []

    def folder(self, bundle_version: str) -> Path:
        self.asked.append(bundle_version)
        if self.down:
            raise RegistryUnavailable("the tracking server did not answer")
        if bundle_version not in self.held:
            raise ModelNotFound(f"no registered version carries bundle {bundle_version}")
        write_manifest(self.root, bundle_version, bundle_version)
        return self.root / bundle_version

    def describe(self) -> str:
        return "alama-credit-ensemble in sqlite:///registry.db"


def test_a_version_missing_here_is_fetched_from_the_registry_and_kept(
    model: TreeModel, tmp_path: Path
) -> None:
    def loader(folder: Path) -> TreeModel:
        version = json.loads((folder / "manifest.json").read_text())["version"]
        return TreeModel(version, model.booster, model.explainer, model.columns)

    write_manifest(tmp_path, "local-1", "local-1")
    registry = Registry(tmp_path, {"challenger-2", "rolled-back-0"})
    cache = BundleCache(tmp_path, max_cached=2, loader=loader, finder=registry)
    assert cache.get("local-1").version == "local-1" and registry.asked == []
    assert cache.get("challenger-2").version == "challenger-2"
    assert cache.get("challenger-2").version == "challenger-2"  # cached: asked once
    assert registry.asked == ["challenger-2"]
    assert (tmp_path / "challenger-2" / "manifest.json").exists()  # the next load is local
    assert cache.get("rolled-back-0").version == "rolled-back-0"

    with pytest.raises(InvalidEvent) as raised:
        cache.get("never-trained-9")
    assert raised.value.reason == "unknown_model_version"
    assert "exists nowhere" in raised.value.detail and "registry.db" in raised.value.detail

    # an outage of the registry is no verdict on the decision: it propagates, to be retried
    outage = BundleCache(tmp_path, loader=loader, finder=Registry(tmp_path, set(), down=True))
    with pytest.raises(RegistryUnavailable):
        outage.get("challenger-3")
    assert is_transient(RegistryUnavailable("away"))

    # without a registry a missing version is unknown, as before
    with pytest.raises(InvalidEvent) as raised:
        BundleCache(tmp_path, loader=loader).get("challenger-3")
    assert raised.value.reason == "unknown_model_version"
