"""The generated package must be exactly what `make protos` produces from protos/."""

import filecmp
from pathlib import Path

from infra.protogen import OUTPUT, generate


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "protos"
    generate(fresh)
    assert _files(fresh) == _files(OUTPUT), "run `make protos`"
    stale = [
        f for f in sorted(_files(fresh)) if not filecmp.cmp(fresh / f, OUTPUT / f, shallow=False)
    ]
    assert not stale, f"run `make protos`; these differ: {stale}"
