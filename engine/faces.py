"""The lazy face every engine package's __init__.py uses (PEP 562).

`from engine.costs import estimate` imports only the submodule that defines the name: the web
server reads configs without torch's training stack, and a face can never close an import cycle.
"""

from __future__ import annotations

import importlib


def lazy(package: str, table: dict[str, str]):
    """A module-level __getattr__ that fetches `name` from `package.<table[name]>` on first use."""

    def __getattr__(name: str):
        if name in table:
            return getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
