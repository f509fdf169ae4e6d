"""MLflow's champion alias moves only through the registry: a refused gate moves nothing and
says why, a passing one keeps the replaced champion for a one-call rollback, and each move is
recorded with who asked (on a throwaway local registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from training.gate import Check, GateResult, Threshold
from training.registry import CHAMPION, PREVIOUS, PromotionRefused, Registry

MODEL = "alama-test-model"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    client.create_registered_model(MODEL)
    registry = Registry(MODEL, client)
    for bundle in ("bundle-a", "bundle-b", "bundle-c"):
        version = client.create_model_version(MODEL, source=str(tmp_path / bundle)).version
        registry.tag_bundle(str(version), bundle)
    return registry


def _verdict(passed: bool) -> GateResult:
    check = Check(
        name="equal_opportunity[gender]",
        passed=passed,
        value=0.02 if passed else 0.09,
        threshold=Threshold(high=0.05, high_exclusive=True),
        interval=(0.01, 0.03) if passed else (0.06, 0.12),
        detail="",
    )
    return GateResult(passed=passed, checks=(check,))


def test_the_first_champion_needs_no_gate_and_later_ones_do(registry: Registry) -> None:
    first = registry.promote("1", "dpo@sacco", None)
    assert (first.action, first.model_version, first.bundle_version) == (
        "promoted",
        "1",
        "bundle-a",
    )
    assert first.replaced_version is None and first.requested_by == "dpo@sacco"
    with pytest.raises(ValueError, match="needs the gate"):
        registry.promote("2", "dpo@sacco", None)
    assert registry.version_of(CHAMPION) == "1"


def test_a_refused_promotion_moves_nothing_and_names_the_check(registry: Registry) -> None:
    registry.promote("1", "ops", None)
    with pytest.raises(PromotionRefused, match=r"equal_opportunity\[gender\]"):
        registry.promote("2", "ops", _verdict(passed=False))
    assert registry.version_of(CHAMPION) == "1" and registry.version_of(PREVIOUS) is None
    record = registry.refusal("2", "ops", _verdict(passed=False))
    assert record.action == "refused" and "equal_opportunity[gender]" in record.reason
    assert (record.model_version, record.replaced_version) == ("2", "1")
    assert [c.name for c in record.checks] == ["equal_opportunity[gender]"]


def test_promotion_keeps_the_previous_champion_and_rollback_swaps_them(
    registry: Registry,
) -> None:
    registry.promote("1", "ops", None)
    promoted = registry.promote("2", "risk-committee", _verdict(passed=True))
    assert (promoted.model_version, promoted.replaced_version) == ("2", "1")
    assert registry.version_of(PREVIOUS) == "1"
    back = registry.rollback("ops-on-call")
    assert (back.action, back.model_version, back.bundle_version) == (
        "rolled_back",
        "1",
        "bundle-a",
    )
    assert back.replaced_version == "2" and back.requested_by == "ops-on-call"
    assert (registry.version_of(CHAMPION), registry.version_of(PREVIOUS)) == ("1", "2")
    assert registry.rollback("ops").model_version == "2"  # and forward again


def test_nothing_to_roll_back_to_is_refused(registry: Registry) -> None:
    with pytest.raises(PromotionRefused, match="no previous champion"):
        registry.rollback("ops")
    registry.promote("3", "ops", None)
    with pytest.raises(PromotionRefused):
        registry.rollback("ops")
    assert registry.version_of(CHAMPION) == "3"


def test_a_verdict_about_another_champion_promotes_nothing(registry: Registry) -> None:
    """Between the gate's verdict and the move the champion changed (a rollback, another
    promotion): the verdict compared the challenger with a model that no longer decides."""
    registry.promote("1", "ops", None)
    registry.promote("2", "ops", _verdict(passed=True), judged_against="1")
    with pytest.raises(PromotionRefused, match="not version 1 the gate compared"):
        registry.promote("3", "ops", _verdict(passed=True), judged_against="1")
    assert registry.version_of(CHAMPION) == "2"
    assert (
        registry.promote("3", "ops", _verdict(passed=True), judged_against="2").model_version == "3"
    )


def test_an_unreachable_registry_is_not_taken_for_no_champion(tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException

    class Down:
        def get_model_version_by_alias(self, *_args: object) -> None:
            raise MlflowException("connection refused", error_code="INTERNAL_ERROR")

    with pytest.raises(MlflowException, match="connection refused"):
        Registry(MODEL, Down()).version_of(CHAMPION)  # type: ignore[arg-type]
