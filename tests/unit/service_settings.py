"""The one settings class each service module defines (not a shared base it imports)."""

from __future__ import annotations

import importlib

from services.common.settings import ServiceSettings


def settings_class(name: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{name}.settings")
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, ServiceSettings)
        and obj.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"services.{name}.settings: expected one settings class"
    return classes[0]
