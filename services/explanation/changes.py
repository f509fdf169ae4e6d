"""What would change a declined decision's outcome, computed with the decision's own bundle
(`services.common.counterfactual`). The full bundle (both models, calibration, bands) is loaded
on first use per version and kept for the last few, like the explainer's models; a version the
bundle root lacks is fetched from the model registry, as the explainer does."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from services.common.bundle import ModelBundle, load_bundle
from services.common.counterfactual import outcome_changes
from services.common.model_registry import ModelNotFound
from services.common.notices import OutcomeChange
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.tabular_bundle import is_tabular_bundle
from services.explanation.explainer import BundleFinder

log = logging.getLogger(__name__)


class OutcomeChanges:
    def __init__(
        self, root: Path | str, max_cached: int = 2, finder: BundleFinder | None = None
    ) -> None:
        self.root = Path(root)
        self.finder = finder
        self.max_cached = max(1, max_cached)
        self._bundles: OrderedDict[str, ModelBundle | None] = OrderedDict()
        self._lock = threading.Lock()

    def _bundle(self, version: str) -> ModelBundle | None:
        """The version's bundle, None where it cannot re-score (gone, or a lender's own
        table, whose columns carry no loan amount or term the member could change)."""
        with self._lock:
            if version in self._bundles:
                self._bundles.move_to_end(version)
                return self._bundles[version]
            folder = self.root / version
            if not (folder / "manifest.json").exists() and self.finder is not None:
                try:
                    folder = self.finder.folder(version)
                except ModelNotFound:
                    pass  # exists nowhere: nothing to re-score with
                except Exception:  # an outage: no changes this time, none remembered
                    log.warning("the model registry did not answer", exc_info=True)
                    return None
            bundle: ModelBundle | None = None
            if (folder / "manifest.json").exists() and not is_tabular_bundle(folder):
                try:
                    bundle = load_bundle(folder)
                except Exception:
                    log.warning("bundle cannot re-score", extra={"version": version}, exc_info=True)
            self._bundles[version] = bundle
            while len(self._bundles) > self.max_cached:
                self._bundles.popitem(last=False)
            return bundle

    def _compute(self, decision: CreditDecision) -> list[OutcomeChange]:
        bundle = self._bundle(decision.model_version)
        return [] if bundle is None else outcome_changes(bundle, decision)

    async def changes(self, decision: CreditDecision) -> list[OutcomeChange]:
        return await asyncio.to_thread(self._compute, decision)
