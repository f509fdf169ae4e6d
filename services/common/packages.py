"""Keep the training-only packages out of a service process, as its image does."""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: set to "1" in a service's environment by the supervisor; read (and removed) at import
ENV = "ALAMA_WITHOUT_TRAINING_PACKAGES"
#: the top-level modules of the Dockerfiles' TRAINING_ONLY_PACKAGES that a service could import
TRAINING_ONLY_MODULES = frozenset({"torch", "triton", "sympy", "mpmath", "networkx"})


class TrainingPackagesAbsent(importlib.abc.MetaPathFinder):
    """Answers an import of a training-only module as the images do: not installed."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in TRAINING_ONLY_MODULES:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (a training-only package, left out of the"
                f" service images and so of this service process: {ENV})",
                name=fullname,
            )
        return None


def keep_training_packages_out() -> bool:
    """Install the finder unless one of those modules is already loaded; True when installed."""
    if any(isinstance(f, TrainingPackagesAbsent) for f in sys.meta_path):
        return True
    if any(name.partition(".")[0] in TRAINING_ONLY_MODULES for name in sys.modules):
        return False
    sys.meta_path.insert(0, TrainingPackagesAbsent())
    return True


def keep_training_packages_out_from_environment() -> bool:
    """Act on ENV, removing it so the process's own children (a training job) are not bound."""
    if os.environ.pop(ENV, "") != "1":
        return False
    return keep_training_packages_out()
