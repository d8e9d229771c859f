"""One typed registry for tasks and methods: decorators for built-ins, entry points for plugins.

Built-ins register themselves when their module is imported; the registry imports the built-in modules
and the plugins' entry points the first time it is asked for a name, so `import harness` stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from harness.errors import UserError

T = TypeVar("T")

# Environment variable naming extra modules to import as plugins (comma separated), for plugins that are
# not packaged yet: the same hook pytest offers with `-p`.
PLUGIN_MODULES_ENV = "LOGITBENCH_PLUGIN_MODULES"


class Registry(Generic[T]):
    """Maps a name to a registered class; unknown names answer with close matches."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...], entry_point_group: str) -> None:
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._group = entry_point_group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class under `name`."""

        def decorate(obj: T) -> T:
            module = getattr(obj, "__module__", "")
            builtin = any(module == m or module.startswith(m + ".") for m in self._builtin_modules)
            self.add(name, obj, origin="builtin" if builtin else f"module {module}")
            return obj

        return decorate

    def add(self, name: str, obj: T, origin: str) -> None:
        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            raise UserError(
                f"{self.kind} '{name}' is registered twice ({self._origins[name]} and {origin}); rename one"
            )
        obj.name = name  # type: ignore[attr-defined]
        self._entries[name] = obj
        self._origins[name] = origin

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for module in filter(None, os.environ.get(PLUGIN_MODULES_ENV, "").split(",")):
            try:
                importlib.import_module(module.strip())
            except ImportError as err:
                raise UserError(
                    f"plugin module '{module}' from ${PLUGIN_MODULES_ENV} cannot be imported: {err}"
                ) from err
        for ep in entry_points(group=self._group):
            try:
                obj = ep.load()
            except Exception as err:
                raise UserError(
                    f"plugin entry point '{ep.name}' ({ep.value}) in group {self._group} failed: {err}"
                ) from err
            if ep.name not in self._entries:
                self.add(ep.name, obj, origin=f"entry point {ep.value}")

    def load(self) -> None:
        """Import built-ins and plugins now (the executor's forkserver does, so workers need not)."""
        self._load()

    def reset(self) -> None:
        """Look for plugins again on the next lookup (after the plugin settings changed); entries already
        registered stay, since a module imported once does not run its decorators a second time."""
        self._loaded = False

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UserError(
                f"unknown {self.kind} '{name}'{hint} (`logitbench list {self.kind}s` shows all)"
            ) from None

    def origin(self, name: str) -> str:
        self._load()
        return self._origins[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter((name, self._entries[name]) for name in self.names())

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries
