"""A manifest can only name files inside its own bundle, each matching its sha256: a bundle
cannot make a service read (or trust) a file elsewhere on the machine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from services.common.bundle import BundleError, load_bundle
from services.common.tabular_bundle import BundleFileError, bundle_file
from services.drift.reference import ReferenceMissing, load_reference


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"model")
    (tmp_path / "secret.txt").write_text("not the bundle's")
    return folder


@pytest.mark.parametrize(
    "name", ["../secret.txt", "/etc/passwd", "", "sub/../../secret.txt", "link.onnx"]
)
def test_names_that_leave_the_bundle_are_refused(bundle: Path, name: str) -> None:
    (bundle / "link.onnx").symlink_to(bundle.parent / "secret.txt")
    with pytest.raises(BundleFileError, match=r"not a file in the bundle|leads out of the bundle"):
        bundle_file(bundle, name, None)


def test_a_file_must_match_its_digest(bundle: Path) -> None:
    digest = _sha(bundle / "model.onnx")
    assert bundle_file(bundle, "model.onnx", digest) == (bundle / "model.onnx").resolve()
    (bundle / "model.onnx").write_bytes(b"model, changed")
    with pytest.raises(BundleFileError, match="sha256"):
        bundle_file(bundle, "model.onnx", digest)


def test_a_feature_bundle_naming_a_file_outside_is_refused(bundle: Path) -> None:
    secret = bundle.parent / "secret.txt"
    manifest = {
        "bundle_format": 1,
        "version": "v1",
        "tabular_features": ["amount_kes"],
        "models": {
            "tabular": {"file": "../secret.txt", "sha256": _sha(secret), "kind": "lightgbm"},
            "gbm_native": {"file": "../secret.txt", "sha256": _sha(secret)},
        },
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a file in the bundle"):
        load_bundle(bundle)


def test_drift_refuses_a_reference_that_is_not_the_one_hashed(bundle: Path) -> None:
    (bundle / "reference.json").write_text(
        json.dumps({"score": {"edges": [1.0], "proportions": [0.5, 0.5]}})
    )
    (bundle / "reference_sample.parquet").write_bytes(b"sample")
    digests = {n: _sha(bundle / n) for n in ("reference.json", "reference_sample.parquet")}
    manifest = {"version": "v1", "reference": {"sha256": digests}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert load_reference(bundle).model_version == "v1"
    (bundle / "reference.json").write_text(
        json.dumps({"score": {"edges": [9.0], "proportions": [0.9, 0.1]}})
    )
    with pytest.raises(ReferenceMissing, match="sha256"):
        load_reference(bundle)
    manifest["reference"] = {"bins": "../secret.txt", "sha256": digests | {"../secret.txt": "x"}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferenceMissing, match="not a file in the bundle"):
        load_reference(bundle)
    (bundle / "manifest.json").write_text(json.dumps({"version": "v1"}))
    with pytest.raises(ReferenceMissing, match="no sha256"):
        load_reference(bundle)
