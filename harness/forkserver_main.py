"""Imported first by a Ray node's forkserver (harness/isolated_run.py): a stand-in for the main script.

multiprocessing starts every process of a forkserver by running its parent's main script again (as
`__mp_main__`), unless the new process's `__main__` already bears that script's file or module name. On a
Ray node the parent is Ray's worker, whose main script imports all of Ray: that re-run cost each run
process 219 ms at load 3.7 on this 2-core machine, most of a no-op run on Ray. A run needs nothing from
that script (its code lives in importable modules), so the forkserver's `__main__` becomes an empty module
bearing the script's name and its processes skip the re-run. (The stdlib's own `"__main__"` preload would
import the script once instead, but Python 3.11's forkserver is never given the script's path.)

The parent names its main script in MAIN_ENV before it starts the forkserver: `path:FILE` or `name:MODULE`,
as multiprocessing.spawn.get_preparation_data gives it. Importing this module anywhere else is harmless
without the variable; nothing but a forkserver's preload list should name it.
"""

import importlib.machinery
import os
import sys
import types

MAIN_ENV = "_LOGITBENCH_FORKSERVER_MAIN"  # no LOGITBENCH_ prefix: never forwarded into the runs


def _install_stand_in(main: str) -> None:
    kind, _, name = main.partition(":")
    stand_in = types.ModuleType("__mp_main__")
    if kind == "path":
        stand_in.__file__ = name
    elif kind == "name":
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
    else:
        return
    sys.modules["__main__"] = sys.modules["__mp_main__"] = stand_in


if os.environ.get(MAIN_ENV):
    _install_stand_in(os.environ[MAIN_ENV])
