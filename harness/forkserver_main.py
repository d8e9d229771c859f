"""Imported first by a forkserver (harness/isolated_run.py on a Ray node): a stand-in for the main script.

multiprocessing starts every process of a forkserver by running its parent's main script again (as
`__mp_main__`), unless the new process's `__main__` already bears that script's file or module name. On a
Ray node the parent is Ray's worker, whose main script imports all of Ray: that re-run cost each run
process 219 ms at load 3.7 on this 2-core machine, most of a no-op run on Ray. A run needs nothing from
that script (its code lives in importable modules), so the forkserver's `__main__` becomes an empty module
bearing the script's name and its processes skip the re-run. (The stdlib's own `"__main__"` preload would
import the script once instead, but Python 3.11's forkserver is never given the script's path.)

Use: put this module first in the forkserver's preload list and set MAIN_ENV to `announcement()` in the
environment while the forkserver starts. The stand-in is installed only in a direct child of the process
that announced it (the forkserver), so importing this module anywhere else changes nothing.
"""

import importlib.machinery
import multiprocessing.spawn
import os
import sys
import types

MAIN_ENV = "_LOGITBENCH_FORKSERVER_MAIN"  # no LOGITBENCH_ prefix: never forwarded into the runs


def announcement() -> str:
    """MAIN_ENV's value for a forkserver this process starts: its id and its main script, as a new process
    of multiprocessing's would be told to run it again ('' when it would run none)."""
    data = multiprocessing.spawn.get_preparation_data("logitbench-run")
    if "init_main_from_name" in data:
        return f"{os.getpid()}:name:{data['init_main_from_name']}"
    if "init_main_from_path" in data:
        return f"{os.getpid()}:path:{data['init_main_from_path']}"
    return ""


def _install_stand_in(value: str) -> None:
    parent, _, main = value.partition(":")
    if parent != str(os.getppid()):  # not the forkserver of the process that announced it
        return
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
