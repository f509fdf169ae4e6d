"""Where training keeps what it makes: worlds, loan books, runs and bundles under artifacts/.

A light module (no model libraries) so that commands which only move data, such as `import`,
start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

from training.profiles import Profile

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LOAN_BOOKS = ARTIFACTS / "loanbooks"


def world_dir(profile: Profile) -> Path:
    return ARTIFACTS / "world" / profile.name


def synthetic_book_dir(profile: Profile) -> Path:
    return LOAN_BOOKS / f"synthetic-{profile.name}"
