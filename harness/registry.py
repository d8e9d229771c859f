"""One typed registry for tasks and methods: decorators for built-ins, entry points for plugins.

Built-ins register themselves when their module is imported; the registry imports the built-in modules
and the plugins' entry points the first time it is asked for a name, so `import harness` stays cheap.

A broken plugin never stops the harness: an entry point or plugin module that fails to load, names
something that is not a task or method class, or declares a reserved parameter is left out with a
warning (`warnings()`, printed by every command), and only a lookup of that very name fails, with the
cause. A plugin that takes a built-in's name loses to the built-in, also with a warning, so that a
shipped leaderboard and its committed baseline always mean the built-in.
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
PATH_HINT = "; name a module importable from PYTHONPATH (my_plugin, not my_plugin.py or a path)"
BUILTIN = "builtin"


class Registry(Generic[T]):
    """Maps a name to a registered class; unknown names answer with close matches."""

    def __init__(
        self,
        kind: str,
        builtin_modules: tuple[str, ...],
        entry_point_group: str,
        check: Callable[[T, str], None] | None = None,
    ) -> None:
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._group = entry_point_group
        # Raises UserError when an object cannot be registered (not a class of the right base, a reserved
        # parameter name); `where` names the object for the message.
        self._check = check
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._broken: dict[str, str] = {}  # name -> why the plugin under that name is not registered
        self._failed_sources: dict[str, str] = {}  # plugin module or entry point -> why it failed
        self._warnings: dict[str, str] = {}  # one message per problem, in the order found
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class under `name`."""

        def decorate(obj: T) -> T:
            self.add(name, obj, origin=BUILTIN if self._is_builtin(obj) else f"module {obj.__module__}")
            return obj

        return decorate

    def _is_builtin(self, obj: object) -> bool:
        module = getattr(obj, "__module__", "") or ""
        return any(module == m or module.startswith(m + ".") for m in self._builtin_modules)

    def add(self, name: str, obj: T, origin: str) -> None:
        """Register `obj` as `name`. A built-in that fails the check or collides with another built-in is a
        programming error and raises; a plugin in either case is left out with a warning."""
        builtin = origin == BUILTIN
        if not isinstance(name, str) or not name.strip():  # names are sorted, listed and typed in boards
            message = f"{self.kind} name {name!r} ({origin}) must be non-empty text"
            if builtin:
                raise UserError(message)
            self._warn(f"name:{name!r}:{origin}", f"{message}; it is left out")
            return
        if self._check is not None:
            obj.name = name  # type: ignore[attr-defined]  # the check's own messages name it (a local input's)
            try:
                self._check(obj, f"{self.kind} '{name}' ({origin})")
            except UserError as err:
                if builtin:
                    raise
                self._reject(name, str(err))
                return
        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            previous = self._origins[name]
            if builtin and previous == BUILTIN:
                raise UserError(f"{self.kind} '{name}' is registered twice by built-in modules; rename one")
            if builtin:  # the plugin came first (imported before the built-ins): the built-in takes over
                self._warn(f"shadow:{name}:{previous}", _shadow_message(self.kind, name, previous))
            else:
                self._warn(
                    f"shadow:{name}:{origin}",
                    _shadow_message(self.kind, name, origin)
                    if previous == BUILTIN
                    else f"{self.kind} '{name}' from {origin} is ignored: {previous} registered that name "
                    "first, and it is the one used (rename one of them)",
                )
                return
        obj.name = name  # type: ignore[attr-defined]
        self._entries[name] = obj
        self._origins[name] = origin
        self._broken.pop(name, None)

    def _reject(self, name: str, message: str) -> None:
        if name not in self._entries:
            self._broken[name] = message
        self._warn(f"reject:{name}:{message}", f"{message}; {self.kind} '{name}' is left out")

    def _warn(self, key: str, message: str) -> None:
        self._warnings.setdefault(key, message)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_MODULES_ENV, "").split(","))):
            try:
                importlib.import_module(module)
            # A plugin's own bug is reported and the rest goes on without it; SystemExit too (a script
            # that parses its own arguments on import), which would otherwise end logitbench silently.
            except (Exception, SystemExit) as err:
                hint = PATH_HINT if module.endswith(".py") or "/" in module else ""
                message = (
                    f"plugin module '{module}' from ${PLUGIN_MODULES_ENV} cannot be imported "
                    f"({type(err).__name__}: {first_line(err)}){hint}"
                )
                self._failed_sources[module] = message
                self._warn(f"module:{module}", f"{message}; going on without it")
        for ep in entry_points(group=self._group):
            try:
                obj = ep.load()
            except (Exception, SystemExit) as err:
                message = (
                    f"plugin entry point '{ep.name}' ({ep.value}) in group {self._group} failed to load "
                    f"({type(err).__name__}: {first_line(err)})"
                )
                self._failed_sources[ep.value] = message
                if ep.name not in self._entries:
                    self._broken[ep.name] = message
                self._warn(f"entry:{ep.name}:{ep.value}", f"{message}; going on without it")
                continue
            if self._entries.get(ep.name) is not obj:
                self.add(ep.name, obj, origin=f"entry point {ep.value}")

    def load(self) -> None:
        """Import built-ins and plugins now (the executor's forkserver does, so workers need not)."""
        self._load()

    def reset(self) -> None:
        """Look for plugins again on the next lookup (after the plugin settings changed); entries already
        registered stay, since a module imported once does not run its decorators a second time."""
        self._loaded = False

    def warnings(self) -> list[str]:
        """What went wrong with plugins so far: each a one-line message for the user."""
        self._load()
        return list(self._warnings.values())

    def problem(self, name: str) -> str | None:
        """Why the plugin registered under `name` was left out, or None (also for an unknown name)."""
        self._load()
        return None if name in self._entries else self._broken.get(name)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            pass
        if name in self._broken:
            raise UserError(f"{self.kind} '{name}' cannot be used: {self._broken[name]}")
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        failed = f"; note: {'; '.join(self._failed_sources.values())}" if self._failed_sources else ""
        raise UserError(
            f"unknown {self.kind} '{name}'{hint} (`logitbench list {self.kind}s` shows all){failed}"
        ) from None

    def origin(self, name: str) -> str:
        self._load()
        return self._origins[name]

    def is_builtin(self, name: str) -> bool:
        return self.origin(name) == BUILTIN

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter((name, self._entries[name]) for name in self.names())

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


def _shadow_message(kind: str, name: str, plugin_origin: str) -> str:
    return (
        f"{kind} '{name}' from {plugin_origin} has the name of a built-in {kind}; the built-in is the one "
        "used (rename the plugin's to run it)"
    )


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else "no message"
