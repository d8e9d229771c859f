"""Modules imported on first use, so that registering a method never pays for importing torch.

`logitbench list` and a fully cached `run` load every registry; importing torch there would cost more
than the rest of the command. A method module writes `F = lazy_module("torch.nn.functional")` and uses
`F.cross_entropy(...)` as usual; the import happens on the first attribute access.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def _load(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"


def lazy_module(name: str) -> Any:
    return LazyModule(name)
