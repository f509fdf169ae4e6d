"""Which registered model version decides: MLflow's `champion` alias, moved only through here.

Promotion takes the gate's verdict (training/gate.py) and refuses, naming the failed checks,
unless it passed; the champion it replaces is kept under the `previous-champion` alias, so
`rollback` is one call that swaps them back. Every move (and every refusal) is returned as a
`RegistryChange` (who asked, from which version to which, why, the gate's checks) for the caller
to publish on `model.registry`, from where the audit service chains it (training.registry_events).

A model version knows its bundle by the `bundle_version` tag set when it was registered, and why
it was trained by its `trigger` tag (drift, performance, schedule, manual).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from services.common.model_registry import (
    BUNDLE_TAG,
    CHALLENGER,
    CHAMPION,
    NOT_FOUND_CODES,
    PREVIOUS,
)
from training.gate import Check, GateResult

__all__ = [
    "BUNDLE_TAG",
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "TRIGGER_TAG",
    "PromotionRefused",
    "Registry",
    "RegistryChange",
]

#: the model-version tag saying why the version was trained
TRIGGER_TAG = "trigger"
CHALLENGER_REGISTERED = "challenger_registered"
PROMOTED = "promoted"
REFUSED = "refused"
ROLLED_BACK = "rolled_back"
FIRST_CHAMPION = "first champion"


@dataclass(frozen=True)
class RegistryChange:
    """One change (or refusal) of the registry's aliases, as the audit chain records it.

    `model_version` is what the change is about: the new champion (promoted, rolled back), the
    refused challenger, or the challenger registered; `replaced_*` the champion before it.
    `change_id` is fixed here, so a change published twice is chained once.
    """

    action: str  # CHALLENGER_REGISTERED, PROMOTED, REFUSED, ROLLED_BACK
    requested_by: str
    model_name: str
    model_version: str | None
    bundle_version: str | None
    replaced_version: str | None
    replaced_bundle_version: str | None
    reason: str
    at: str
    trigger: str = ""
    checks: tuple[Check, ...] = ()
    change_id: str = ""

    def __post_init__(self) -> None:
        if not self.change_id:
            object.__setattr__(self, "change_id", str(uuid.uuid4()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "action": self.action,
            "requested_by": self.requested_by,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "bundle_version": self.bundle_version,
            "replaced_version": self.replaced_version,
            "replaced_bundle_version": self.replaced_bundle_version,
            "reason": self.reason,
            "at": self.at,
            "trigger": self.trigger,
            "checks": [c.to_dict() for c in self.checks],
        }


class PromotionRefused(Exception):
    """The gate did not hold (or there is nothing to roll back to); the message says why.

    `change` is the refusal to record, when there is one (a gate's refusal, not a rollback with
    nothing to go back to)."""

    def __init__(self, message: str, change: RegistryChange | None = None) -> None:
        super().__init__(message)
        self.change = change


class Registry:
    def __init__(self, model_name: str, client: MlflowClient | None = None) -> None:
        self.model_name = model_name
        self.client = client or MlflowClient()

    def version_of(self, alias: str) -> str | None:
        """The version an alias points at; None only when the registry says there is none (an
        outage is raised: taken for "no champion" it would crown a model with no gate)."""
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND_CODES:
                return None
            raise

    def bundle_of(self, version: str) -> str | None:
        tags = self.client.get_model_version(self.model_name, version).tags
        return tags.get(BUNDLE_TAG)

    def trigger_of(self, version: str) -> str:
        return str(
            self.client.get_model_version(self.model_name, version).tags.get(TRIGGER_TAG, "")
        )

    def run_of(self, version: str) -> str | None:
        return self.client.get_model_version(self.model_name, version).run_id or None

    def tag_bundle(self, version: str, bundle_version: str) -> None:
        self.client.set_model_version_tag(self.model_name, version, BUNDLE_TAG, bundle_version)

    def mark_challenger(
        self, version: str, requested_by: str = "training", trigger: str = "manual"
    ) -> RegistryChange:
        """Give `version` the `challenger` alias (it runs in shadow); the champion stays."""
        change = self.plan_challenger(version, requested_by, trigger)
        self.apply(change)
        return change

    def plan_challenger(
        self, version: str, requested_by: str = "training", trigger: str = "manual"
    ) -> RegistryChange:
        """The change `mark_challenger` makes, not made yet (see `apply`)."""
        return self._change(
            CHALLENGER_REGISTERED,
            requested_by,
            version,
            f"version {version} runs in shadow beside the champion",
            replaced=self.version_of(CHAMPION),
            trigger=trigger,
        )

    def promote(
        self,
        version: str,
        requested_by: str,
        verdict: GateResult | None,
        judged_against: str | None = None,
    ) -> RegistryChange:
        """Move `champion` to `version` if the gate passed (see `plan_promotion`)."""
        change = self.plan_promotion(version, requested_by, verdict, judged_against)
        self.apply(change)
        return change

    def plan_promotion(
        self,
        version: str,
        requested_by: str,
        verdict: GateResult | None,
        judged_against: str | None = None,
    ) -> RegistryChange:
        """The promotion of `version`, checked but not made yet (see `apply`). `verdict` None is
        allowed only when there is no champion yet (the first model has nothing to be compared
        with). `judged_against`: the champion the gate compared it with; a champion that
        changed since (a rollback or another promotion meanwhile) refuses, since the verdict is
        not about it."""
        current = self.version_of(CHAMPION)
        if judged_against is not None and current != judged_against:
            raise PromotionRefused(
                f"the champion is version {current}, not version {judged_against} the gate"
                " compared the challenger with: run promote again"
            )
        if verdict is None and current is not None:
            raise ValueError("a champion exists: promotion needs the gate's verdict")
        if verdict is not None and not verdict.passed:
            change = self.refusal(version, requested_by, verdict)
            raise PromotionRefused(change.reason, change)
        reason = FIRST_CHAMPION if verdict is None else "the gate held"
        return self._change(
            PROMOTED,
            requested_by,
            version,
            reason,
            replaced=current,
            trigger=self.trigger_of(version),
            checks=verdict.checks if verdict is not None else (),
        )

    def apply(self, change: RegistryChange) -> None:
        """Make a planned change (`plan_promotion`, `plan_rollback`, `plan_challenger`)."""
        self.finish(change.action, change.model_version, change.replaced_version, change.trigger)

    def finish(self, action: str, version: str | None, replaced: str | None, trigger: str) -> None:
        """Move the aliases a change names; idempotent, so a change a crash left half made is
        completed by making it again. The alias that decides moves first (`champion`, or
        `challenger` for a registration): once it has moved, `made` says the change happened."""
        if version is None or action not in (PROMOTED, ROLLED_BACK, CHALLENGER_REGISTERED):
            raise ValueError(f"{action} of version {version} moves no alias")
        if action == CHALLENGER_REGISTERED:
            self.client.set_model_version_tag(self.model_name, version, TRIGGER_TAG, trigger)
            self.client.set_registered_model_alias(self.model_name, CHALLENGER, version)
            return
        self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
        if replaced is not None and replaced != version:
            self.client.set_registered_model_alias(self.model_name, PREVIOUS, replaced)
        if action == PROMOTED and self.version_of(CHALLENGER) == version:
            # it decides now; no longer in shadow
            self.client.delete_registered_model_alias(self.model_name, CHALLENGER)

    def made(self, action: str, version: str | None) -> bool:
        """Whether the alias that decides a change of `action` points at `version`."""
        alias = CHALLENGER if action == CHALLENGER_REGISTERED else CHAMPION
        return version is not None and self.version_of(alias) == version

    def refusal(self, version: str, requested_by: str, verdict: GateResult) -> RegistryChange:
        """The record of a refused promotion of `version` (for the audit chain); nothing moves."""
        return self._change(
            REFUSED,
            requested_by,
            version,
            verdict.refusal() or "",
            replaced=self.version_of(CHAMPION),
            trigger=self.trigger_of(version),
            checks=verdict.checks,
        )

    def rollback(self, requested_by: str) -> RegistryChange:
        """Back to the champion before this one; the one rolled back becomes the previous."""
        change = self.plan_rollback(requested_by)
        self.apply(change)
        return change

    def plan_rollback(self, requested_by: str) -> RegistryChange:
        """The rollback, not made yet (see `apply`)."""
        previous = self.version_of(PREVIOUS)
        current = self.version_of(CHAMPION)
        if previous is None:
            raise PromotionRefused("no previous champion to roll back to")
        return self._change(ROLLED_BACK, requested_by, previous, "rollback", replaced=current)

    def _change(
        self,
        action: str,
        requested_by: str,
        version: str | None,
        reason: str,
        *,
        replaced: str | None = None,
        trigger: str = "",
        checks: tuple[Check, ...] = (),
    ) -> RegistryChange:
        return RegistryChange(
            action=action,
            requested_by=requested_by,
            model_name=self.model_name,
            model_version=version,
            bundle_version=self.bundle_of(version) if version is not None else None,
            replaced_version=replaced,
            replaced_bundle_version=self.bundle_of(replaced) if replaced is not None else None,
            reason=reason,
            at=datetime.now(UTC).isoformat(),
            trigger=trigger,
            checks=checks,
        )
