"""Where a registered model's bundle is: MLflow's registry, read by every service that serves or
explains a model (issue 13: serving follows the `champion` alias, not a symlink).

The registered model `alama-credit-ensemble` has one version per trained bundle, tagged with the
bundle's version (`bundle_version`), and the bundle's files logged as the run's `bundle`
artifacts. A service finds a version's bundle under its own bundle root (`artifacts/bundles/
<bundle_version>`) and, when that folder is not there (another machine, a pod with an empty
volume), downloads it from MLflow once into the root, so any version still registered can be
loaded anywhere. Moving aliases is `training.registry`'s job alone; this module only reads.

The registry's location is MLflow's own ``MLFLOW_TRACKING_URI`` (a local SQLite store under
``artifacts/mlflow`` when unset, the one `make train` writes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

REGISTERED_MODEL = "alama-credit-ensemble"
CHAMPION = "champion"
PREVIOUS = "previous-champion"
CHALLENGER = "challenger"
BUNDLE_TAG = "bundle_version"
#: the run artifact path the bundle's files are logged under (training.tracking)
BUNDLE_ARTIFACT = "bundle"

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STORE = REPO / "artifacts" / "mlflow"
DEFAULT_BUNDLE_ROOT = REPO / "artifacts" / "bundles"


class ModelNotFound(LookupError):
    """No registered version answers (no such alias, version or bundle anywhere)."""


def tracking_uri(store: Path = DEFAULT_STORE) -> str:
    """MLFLOW_TRACKING_URI, or the local store `make train` writes."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store}/mlflow.db"


def registry_client(uri: str | None = None) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri or tracking_uri(), registry_uri=uri or tracking_uri())


@dataclass(frozen=True)
class RegisteredBundle:
    """One registered version and the bundle it carries."""

    model_version: str
    bundle_version: str
    run_id: str | None


class ModelLocator:
    """Resolve aliases and versions to bundle folders (read only)."""

    def __init__(
        self,
        client: MlflowClient | None = None,
        *,
        model_name: str = REGISTERED_MODEL,
        bundle_root: Path | str = DEFAULT_BUNDLE_ROOT,
    ) -> None:
        self.client = client or registry_client()
        self.model_name = model_name
        self.bundle_root = Path(bundle_root)

    def by_alias(self, alias: str) -> RegisteredBundle:
        """The version an alias points at now; ModelNotFound when the alias is unset."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            raise ModelNotFound(f"no {self.model_name}@{alias} in the registry") from exc
        return self._registered(found)

    def by_bundle(self, bundle_version: str) -> RegisteredBundle:
        """The registered version carrying this bundle; ModelNotFound when none does."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(
                f"name = '{self.model_name}' and tags.{BUNDLE_TAG} = '{bundle_version}'"
            )
        except MlflowException as exc:
            raise ModelNotFound(f"the registry cannot be searched: {exc}") from exc
        if not found:
            raise ModelNotFound(f"no registered version carries bundle {bundle_version}")
        return self._registered(max(found, key=lambda v: int(v.version)))

    def _registered(self, version: object) -> RegisteredBundle:
        tags = getattr(version, "tags", {}) or {}
        bundle = tags.get(BUNDLE_TAG)
        number = str(getattr(version, "version", ""))
        if not bundle:
            raise ModelNotFound(f"{self.model_name} version {number} names no bundle")
        return RegisteredBundle(number, str(bundle), getattr(version, "run_id", None))

    def folder(self, bundle_version: str) -> Path:
        """The bundle's folder under the root, downloaded from MLflow when it is not there."""
        if not bundle_version or "/" in bundle_version or bundle_version.startswith("."):
            raise ModelNotFound(f"{bundle_version!r} is not a bundle version")
        folder = self.bundle_root / bundle_version
        if (folder / "manifest.json").exists():
            return folder
        registered = self.by_bundle(bundle_version)
        if registered.run_id is None:
            raise ModelNotFound(f"bundle {bundle_version} has no run to download it from")
        return self._download(registered.run_id, folder)

    def _download(self, run_id: str, folder: Path) -> Path:
        """Fetch the run's bundle into a temporary folder beside the target and rename it in,
        so a reader never sees half a bundle (the bundle's hashes are checked on load)."""
        self.bundle_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=self.bundle_root))
        try:
            got = Path(
                self.client.download_artifacts(run_id, BUNDLE_ARTIFACT, dst_path=str(staging))
            )
            if not (got / "manifest.json").exists():
                raise ModelNotFound(f"run {run_id} logged no bundle")
            try:
                got.rename(folder)
            except OSError:
                if not (folder / "manifest.json").exists():  # not a concurrent download
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder
