"""The drift reference of the promoted model bundle: PSI bins, the training sample, the version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.psi import ReferenceBins
from services.common.tabular_bundle import BundleFileError, bundle_file

SCORE = "score"
#: the decision band's number (1 approve, 2 review, 3 decline); older bundles lack its reference
BAND = "band"


class ReferenceMissing(RuntimeError):
    """No usable bundle reference: the service cannot say what "no drift" looks like."""


@dataclass(frozen=True)
class DriftReference:
    model_version: str
    bins: dict[str, ReferenceBins]  # tabular feature name or "score" -> training bins
    sample_path: Path  # reference_sample.parquet: training rows for Evidently reports

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(self.bins)


def load_reference(bundle_dir: str | Path) -> DriftReference:
    """Read manifest.json and reference.json of a bundle; fail with what to do when absent."""
    folder = Path(bundle_dir)
    manifest_path, bins_path = folder / "manifest.json", folder / "reference.json"
    for path in (manifest_path, bins_path):
        if not path.is_file():
            raise ReferenceMissing(
                f"drift reference not found: {path} is missing. Train and promote a model"
                " (`make train`) or point ALAMA_DRIFT_BUNDLE_DIR at a bundle folder."
            )
    try:
        manifest = json.loads(manifest_path.read_text())
        bins_path, sample_path = _verified(folder, manifest)
        raw = json.loads(bins_path.read_text())
        bins = {
            name: ReferenceBins.from_lists(spec["edges"], spec["proportions"])
            for name, spec in raw.items()
        }
        version = str(manifest["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ReferenceMissing(f"malformed drift reference in {folder}: {exc}") from exc
    if SCORE not in bins:
        raise ReferenceMissing(f"{bins_path} has no reference for {SCORE!r}")
    return DriftReference(model_version=version, bins=bins, sample_path=sample_path)


def _verified(folder: Path, manifest: dict[str, Any]) -> tuple[Path, Path]:
    """The reference files the manifest names, inside the bundle and matching their sha256
    (a feature bundle lists them under `reference.sha256`, a tabular one under `files`)."""
    reference = manifest.get("reference", {})
    digests = {**manifest.get("files", {}), **reference.get("sha256", {})}
    paths = []
    for name in (
        reference.get("bins", "reference.json"),
        reference.get("sample", "reference_sample.parquet"),
    ):
        if name not in digests:
            raise ReferenceMissing(
                f"the manifest in {folder} gives no sha256 for {name}: retrain the bundle"
            )
        try:
            paths.append(bundle_file(folder, name, digests[name]))
        except BundleFileError as exc:
            raise ReferenceMissing(f"unusable drift reference: {exc}") from None
    return paths[0], paths[1]
