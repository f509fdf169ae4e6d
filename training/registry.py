"""Which registered model version decides: MLflow's `champion` alias, moved only through here.

Promotion takes the gate's verdict (training/gate.py) and refuses, naming the failed checks,
unless it passed; the champion it replaces is kept under the `previous-champion` alias, so
`rollback` is one call that swaps them back. Every move is returned as a `RegistryChange` (who
asked, from which version to which, why) for the caller to record in the audit chain.

A model version knows its bundle by the `bundle_version` tag set when it was registered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from services.common.model_registry import BUNDLE_TAG, CHALLENGER, CHAMPION, PREVIOUS
from training.gate import GateResult

__all__ = ["BUNDLE_TAG", "CHALLENGER", "CHAMPION", "PREVIOUS", "PromotionRefused", "Registry"]


class PromotionRefused(Exception):
    """The gate did not hold (or there is nothing to roll back to); the message says why."""


@dataclass(frozen=True)
class RegistryChange:
    action: str  # "promoted", "refused", "rolled_back"
    requested_by: str
    model_version: str | None  # the champion after the change
    bundle_version: str | None
    replaced_version: str | None  # the champion before it
    reason: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Registry:
    def __init__(self, model_name: str, client: MlflowClient | None = None) -> None:
        self.model_name = model_name
        self.client = client or MlflowClient()

    def version_of(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException:
            return None

    def bundle_of(self, version: str) -> str | None:
        tags = self.client.get_model_version(self.model_name, version).tags
        return tags.get(BUNDLE_TAG)

    def tag_bundle(self, version: str, bundle_version: str) -> None:
        self.client.set_model_version_tag(self.model_name, version, BUNDLE_TAG, bundle_version)

    def mark_challenger(self, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, version)

    def promote(
        self, version: str, requested_by: str, verdict: GateResult | None
    ) -> RegistryChange:
        """Move `champion` to `version` if the gate passed. `verdict` None is allowed only when
        there is no champion yet (the first model has nothing to be compared with)."""
        current = self.version_of(CHAMPION)
        if verdict is None and current is not None:
            raise ValueError("a champion exists: promotion needs the gate's verdict")
        if verdict is not None and not verdict.passed:
            change = self._change("refused", requested_by, current, verdict.refusal() or "")
            raise PromotionRefused(change.reason)
        if current is not None and current != version:
            self.client.set_registered_model_alias(self.model_name, PREVIOUS, current)
        self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
        reason = "first champion" if verdict is None else "the gate held"
        return self._change("promoted", requested_by, version, reason, replaced=current)

    def refusal(self, requested_by: str, verdict: GateResult) -> RegistryChange:
        """The record of a refused promotion (for the audit chain); nothing moves."""
        return self._change(
            "refused", requested_by, self.version_of(CHAMPION), verdict.refusal() or ""
        )

    def rollback(self, requested_by: str) -> RegistryChange:
        """Back to the champion before this one; the one rolled back becomes the previous."""
        previous = self.version_of(PREVIOUS)
        current = self.version_of(CHAMPION)
        if previous is None:
            raise PromotionRefused("no previous champion to roll back to")
        self.client.set_registered_model_alias(self.model_name, CHAMPION, previous)
        if current is not None:
            self.client.set_registered_model_alias(self.model_name, PREVIOUS, current)
        return self._change("rolled_back", requested_by, previous, "rollback", replaced=current)

    def _change(
        self,
        action: str,
        requested_by: str,
        version: str | None,
        reason: str,
        *,
        replaced: str | None = None,
    ) -> RegistryChange:
        return RegistryChange(
            action=action,
            requested_by=requested_by,
            model_version=version,
            bundle_version=self.bundle_of(version) if version is not None else None,
            replaced_version=replaced,
            reason=reason,
            at=datetime.now(UTC).isoformat(),
        )
