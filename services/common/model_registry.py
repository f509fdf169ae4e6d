"""Where a registered model's bundle is: MLflow's registry, read by every service that serves or
explains a model (issue 13: serving follows the `champion` alias, not a symlink).

The registered model `alama-credit-ensemble` has one version per trained bundle, tagged with the
bundle's version (`bundle_version`), and the bundle's files logged as the run's `bundle`
artifacts. A service finds a version's bundle under its own bundle root (`artifacts/bundles/
<bundle_version>`) and, when that folder is not there (another machine, a pod with an empty
volume), downloads it from MLflow once into the root, so any version still registered can be
loaded anywhere. Moving aliases is `training.registry`'s job alone; this module only reads.

The registry's location is MLflow's own ``MLFLOW_TRACKING_URI`` (a local SQLite store under
``artifacts/mlflow`` when unset, the one `make train` writes). A reader never creates a store:
a local store that does not exist holds no model (`ModelNotFound`), while a registry that cannot
be reached is an outage (`RegistryUnavailable`, retried, never taken for "no such model").
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.retries import TransientFailure

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
#: what a bundle version may look like (it names a folder and goes into a registry query)
BUNDLE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelNotFound(LookupError):
    """No registered version answers (no such alias, version or bundle anywhere)."""


class RegistryUnavailable(TransientFailure):
    """The registry did not answer (a server away, a locked store): ask again later."""


#: MLflow's answers that mean "no such thing", as opposed to "could not ask"
#: MLflow's answers for "no such alias, version or model" (anything else is an outage)
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
_NOT_FOUND_CODES = NOT_FOUND_CODES


def _missing_local_store(uri: str) -> Path | None:
    """The SQLite file a `sqlite:///` URI names when it does not exist (reading must not
    create an empty store: MLflow would, with its migrations, in several seconds)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    return None if path.exists() else path


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
        self._client = client
        self.model_name = model_name
        self.bundle_root = Path(bundle_root)

    @property
    def client(self) -> MlflowClient:
        """Opened on first use: a service that never needs the registry never imports MLflow."""
        if self._client is None:
            uri = tracking_uri()
            missing = _missing_local_store(uri)
            if missing is not None:
                raise ModelNotFound(f"no model registry at {missing} (run `make train`)")
            self._client = registry_client(uri)
        return self._client

    def describe(self) -> str:
        """Where this locator looks, for messages a person reads."""
        return f"{self.model_name} in {tracking_uri()}"

    def _ask(self, what: str, call: Any) -> Any:
        """One registry call; MLflow's "not found" becomes ModelNotFound, anything else an
        outage (RegistryUnavailable)."""
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as exc:
            if exc.error_code in _NOT_FOUND_CODES:
                raise ModelNotFound(f"{what}: {exc.message}") from exc
            raise RegistryUnavailable(f"the model registry did not answer ({what}): {exc}") from exc
        except OSError as exc:  # a connection refused or reset below MLflow's client
            raise RegistryUnavailable(f"the model registry did not answer ({what}): {exc}") from exc

    def by_alias(self, alias: str) -> RegisteredBundle:
        """The version an alias points at now; ModelNotFound when the alias is unset."""
        client = self.client
        found = self._ask(
            f"no {self.model_name}@{alias} in the registry",
            lambda: client.get_model_version_by_alias(self.model_name, alias),
        )
        return self._registered(found)

    def by_bundle(self, bundle_version: str) -> RegisteredBundle:
        """The registered version carrying this bundle; ModelNotFound when none does."""
        if not BUNDLE_VERSION.match(bundle_version):
            raise ModelNotFound(f"{bundle_version!r} is not a bundle version")
        client = self.client
        found = self._ask(
            f"no registered version carries bundle {bundle_version}",
            lambda: client.search_model_versions(
                f"name = '{self.model_name}' and tags.{BUNDLE_TAG} = '{bundle_version}'"
            ),
        )
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
        if not BUNDLE_VERSION.match(bundle_version):
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
            client = self.client
            got = Path(
                self._ask(
                    f"run {run_id} has no bundle to download",
                    lambda: client.download_artifacts(
                        run_id, BUNDLE_ARTIFACT, dst_path=str(staging)
                    ),
                )
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
